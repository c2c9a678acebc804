"""Logs: every line of a job carries its port and job id (spsdk's own lines too), and each job
ends with exactly one summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GANGD = str(Path(sys.executable).parent / "gangd")


def test_job_lines_are_bound_and_summarised(tmp_path):
    daemon = subprocess.Popen(
        [
            GANGD,
            "run",
            "--simulate",
            "2",
            "--boards",
            "2",
            "--time-scale",
            "0",
            "--state-dir",
            str(tmp_path),
            "--metrics-address",
            "127.0.0.1:0",
            "--log-level",
            "debug",
            "--spsdk-log-level",
            "info",
            "--fault",
            "status:cmd=write-memory,code=20106,nth=1",  # blank boards get no erase to fail
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for raw in daemon.stdout:  # JSON, since stdout is not a terminal
        entry = json.loads(raw)
        lines.append(entry)
        if sum(1 for e in lines if e["event"] == "job finished") == 2:
            break
    daemon.terminate()
    daemon.communicate(timeout=30)

    jobs = {e["job"] for e in lines if "job" in e}
    assert len(jobs) == 2
    for job in jobs:
        mine = [e for e in lines if e.get("job") == job]
        assert all(e["port"] in ("1-1.1", "1-1.2") and e["label"] for e in mine)
        assert len({e["port"] for e in mine}) == 1
        # spsdk's own logging went through the same pipeline, bound to the same job.
        assert any(e["logger"].startswith("spsdk") for e in mine)
        summaries = [e for e in mine if e["event"] == "job finished"]
        assert len(summaries) == 1
        summary = summaries[0]
        assert summary["result"] == "success" and summary["attempts"] == 1 and "write" in summary["steps"]
        assert summary["board"]  # the board identity is bound once known
    # Lines outside any job (start-up, the status endpoint) carry no job id.
    assert any(e["event"] == "ready" and "job" not in e for e in lines)
