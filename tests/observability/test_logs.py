"""Logs: every line of a job carries its port and job id (spsdk's own lines too), and each job
ends with exactly one summary line."""

from __future__ import annotations

from ..support import GANGD, Process


def test_job_lines_are_bound_and_summarised(processes, tmp_path):
    daemon = processes(
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
        ]
    )

    def two_finished(process: Process) -> bool:
        return sum(1 for e in process.json_lines() if e["event"] == "job finished") >= 2

    daemon.wait_until(two_finished, 60, "two finished jobs")  # JSON, since stdout is not a terminal
    assert daemon.stop() == 0
    assert all(line.startswith("{") for line in daemon.stdout_lines)
    lines = daemon.json_lines()

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
