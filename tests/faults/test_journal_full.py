"""The state directory's filesystem fills up under a running station, then has room again.

On a real tmpfs of 400 KiB (the test mounts one; mounting needs root, which CI has): before this
mend gangd ended in an ExceptionGroup traceback with three jobs left `running`. Now the journal
being full is a state: no job starts that it cannot record (the board is left untouched), /status,
the port's tile and `gangd_journal_writable` say why, a finished job's completion is held in
memory, and once the filesystem has room again (the tmpfs is remounted larger) the held records
are written and the station goes on by itself."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from gangd.service.records import RecordStore

from ..support import GANGD, Process, free_port, wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@pytest.fixture
def tmpfs(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def get(address: str, path: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}{path}", timeout=5) as response:
        return response.read().decode()


def journal_metric(address: str) -> float:
    line = next(x for x in get(address, "/metrics").splitlines() if x.startswith("gangd_journal_writable "))
    return float(line.split()[1])


@needs_root
def test_disk_full_is_a_state_and_the_station_resumes(processes, tmpfs):
    address = f"127.0.0.1:{free_port()}"
    daemon: Process = processes(
        [GANGD, "run", "--simulate", "4", "--time-scale", "0", "--state-dir", str(tmpfs), "--http-address", address]
    )
    full = daemon.wait_entry(
        lambda e: e["event"] == "board waits: its job could not be recorded", 60, "the journal filling up"
    )
    assert full["reason"].startswith(f"state directory full: {tmpfs}, ")
    assert daemon.running(), daemon.tail()

    # The operator sees why: /status, the port's tile (its last reason) and the metric.
    status = wait_for(
        lambda: (s := json.loads(get(address, "/status")))["journal"] != "writable" and s, 10, "/status: journal"
    )
    assert status["journal"].startswith("state directory full")
    assert any(p["last_reason"] == status["journal"] for p in status["ports"])
    wait_for(lambda: journal_metric(address) == 0, 10, "gangd_journal_writable 0")
    boards_while_full = sum(e["event"] == "job finished" for e in daemon.json_lines())

    # Room again: the station goes on by itself and the held completions are written.
    subprocess.run(["mount", "-o", "remount,size=8m", str(tmpfs)], check=True)
    daemon.wait_entry(lambda e: e["event"].startswith("journal writable again: held"), 30, "the journal resuming")
    wait_for(
        lambda: sum(e["event"] == "job finished" for e in daemon.json_lines()) >= boards_while_full + 8,
        60,
        "boards programmed after the disk had room",
    )
    assert journal_metric(address) == 1
    assert daemon.stop() == 0

    # Every board a job touched has its complete record: no row left running, none lost.
    finished = {e["record"]: e["result"] for e in daemon.json_lines() if e["event"] == "job finished" and e["record"]}
    store = RecordStore(tmpfs / "records.sqlite")
    rows = {row["id"]: row for row in store.jobs()}
    store.close()
    assert not [r for r in rows.values() if r["result"] == "running"]
    assert {i: rows[i]["result"] for i in finished} == finished
    assert all(rows[i]["finished"] is not None for i in finished)
    assert "Traceback" not in daemon.stderr


@needs_root
def test_a_full_trace_directory_drops_traces_counted_and_the_jobs_go_on(processes, tmpfs, tmp_path):
    """Traces of failing boards (the default keeps them) into a 400 KiB tmpfs: once it is full
    each trace is dropped with a warning and gangd_traces_dropped_total; the boards' jobs and
    records go on, and no half-written trace is left taking the space."""
    address = f"127.0.0.1:{free_port()}"
    state = tmp_path / "records"
    daemon: Process = processes(
        [GANGD, "run", "--simulate", "4", "--time-scale", "0", "--state-dir", str(state), "--http-address", address]
        + ["--trace", str(tmpfs), "--fault", "status:cmd=write-memory,code=10200"]
    )
    daemon.wait_entry(lambda e: e["event"] == "trace not written", 30, "a trace dropped")
    finished = sum(e["event"] == "job finished" for e in daemon.json_lines())
    wait_for(
        lambda: sum(e["event"] == "job finished" for e in daemon.json_lines()) >= finished + 8, 60, "jobs going on"
    )
    dropped = next(x for x in get(address, "/metrics").splitlines() if x.startswith("gangd_traces_dropped_total "))
    assert float(dropped.split()[1]) >= 1
    assert daemon.stop() == 0
    assert not list(tmpfs.glob("*.tmp"))
