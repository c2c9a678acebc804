"""A daemon killed with SIGKILL in the middle of a write loses no finished record, and the job it
was running is marked interrupted when gangd starts again."""

from __future__ import annotations

import signal
from pathlib import Path

from gangd.service.records import RecordStore

from ..support import GANGD, Process


def start(processes, state_dir: Path) -> Process:
    return processes(
        [
            GANGD,
            "run",
            "--simulate",
            "2",
            "--time-scale",
            "1",
            "--replace-delay",
            "0.2",
            "--state-dir",
            str(state_dir),
            "--log-level",
            "debug",
            "--http-address",
            "127.0.0.1:0",
        ]
    )


def test_sigkill_during_a_write(processes, tmp_path):
    daemon = start(processes, tmp_path)

    def writing_after_two_results(process: Process) -> dict | None:
        finished = 0
        for entry in process.json_lines():
            finished += entry["event"] == "job finished"
            if entry["event"] == "step started" and entry["step"] == "write" and finished >= 2:
                return entry
        return None

    writing = daemon.wait_until(writing_after_two_results, 60, "a write started after two finished jobs")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # in the middle of this board's write
    finished = {e["record"]: e["result"] for e in daemon.json_lines() if e["event"] == "job finished"}
    assert writing["job"] not in {e.get("job") for e in daemon.json_lines() if e["event"] == "job finished"}

    # Before the restart the killed job's row still says running (nothing could update it).
    store = RecordStore(tmp_path / "records.sqlite")
    running = store.jobs(result="running")
    store.close()
    assert running, "the job that was writing has a row"

    # Restart: gangd marks what it finds running as interrupted, then carries on.
    daemon = start(processes, tmp_path)
    daemon.wait_entry(lambda e: e["event"] == "job finished", 60, "a job finished after the restart")
    assert daemon.stop() == 0

    store = RecordStore(tmp_path / "records.sqlite")
    rows = {row["id"]: row for row in store.jobs()}
    store.close()
    for record_id, result in finished.items():  # no finished record is lost or changed
        assert rows[record_id]["result"] == result
    interrupted = [rows[row["id"]] for row in running]
    assert all(row["result"] == "interrupted" for row in interrupted)
