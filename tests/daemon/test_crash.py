"""A daemon killed with SIGKILL in the middle of a write loses no finished record, and the job it
was running is marked interrupted when gangd starts again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from gangd.records import RecordStore

GANGD = str(Path(sys.executable).parent / "gangd")


def start(state_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [GANGD, "run", "--simulate", "2", "--time-scale", "1", "--replace-delay", "0.2",
         "--state-dir", str(state_dir), "--log-level", "debug", "--http-address", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigkill_during_a_write(tmp_path):
    daemon = start(tmp_path)
    finished: dict[int, str] = {}
    try:
        for line in daemon.stdout:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry["event"] == "job finished":
                finished[entry["record"]] = entry["result"]
            elif entry["event"] == "step started" and entry["step"] == "write" and len(finished) >= 2:
                daemon.send_signal(signal.SIGKILL)  # in the middle of this board's write
                killed_job = entry["job"]
                break
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    assert daemon.returncode == -signal.SIGKILL

    # Before the restart the killed job's row still says running (nothing could update it).
    store = RecordStore(tmp_path / "records.sqlite")
    running = store.jobs(result="running")
    store.close()
    assert running, "the job that was writing has a row"

    # Restart: gangd marks what it finds running as interrupted, then carries on.
    daemon = start(tmp_path)
    for line in daemon.stdout:
        if '"job finished"' in line:
            break
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=30)

    store = RecordStore(tmp_path / "records.sqlite")
    rows = {row["id"]: row for row in store.jobs()}
    store.close()
    for record_id, result in finished.items():  # no finished record is lost or changed
        assert rows[record_id]["result"] == result
    interrupted = [rows[row["id"]] for row in running]
    assert all(row["result"] == "interrupted" for row in interrupted)
    assert "killed or crashed" in interrupted[0]["reason"]
    assert killed_job  # the job we killed was mid-write
