"""The state directory's filesystem fills up under a running station, then has room again.

As root (CI), on a real tmpfs of 400 KiB that the test mounts: before this mend gangd ended in an
ExceptionGroup traceback with three jobs left `running`. Not as root (mount(2) needs
CAP_SYS_ADMIN), SQLite's `max_page_count` stands in for the full filesystem: gangd runs under a
launcher that caps its journal a few pages past its size (SQLite then refuses the write with
SQLITE_FULL, the code a full disk gives) and lifts the cap when the test makes room. The trace
directory's stand-in is a directory without write permission (root ignores it, hence the tmpfs).

Now the journal being full is a state: no job starts that it cannot record (the board is left
untouched), /status, the port's tile and `gangd_journal_writable` say why, a finished job's
completion is held in memory, and once there is room again the held records are written and the
station goes on by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gangd.service.records import RecordStore

from ..support import GANGD, Process, free_port, wait_for

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mounting a tmpfs needs root (the stand-in runs instead)")

# `python -c CAPPED CAP_FILE gangd-arguments...`: gangd with its journal capped by SQLite's
# max_page_count to CAP_FILE's number of pages past the size it opened at; "none" lifts the cap
# (read again before each of the keeper's retries, as a remount would be seen).
CAPPED = """
import sys
from pathlib import Path
from gangd.cli import main
from gangd.service.records import RecordStore

cap_file = Path(sys.argv.pop(1))
opened = RecordStore._open
retry = RecordStore.recover

def cap(store):
    extra = cap_file.read_text().strip()
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    limit = 1073741823 if extra == "none" else pages + int(extra)
    store._db.execute(f"PRAGMA max_page_count={limit}")

def capped_open(store):
    opened(store)
    cap(store)

def capped_recover(store):
    with store._lock:
        if cap_file.read_text().strip() == "none":
            cap(store)
    return retry(store)

RecordStore._open = capped_open
RecordStore.recover = capped_recover
sys.argv[0] = "gangd"
sys.exit(main())
"""


@dataclass
class FullDisk:
    """A state directory that fills up (`gangd` is the command to run in it) and `room()` frees."""

    dir: Path
    gangd: list[str]
    room: Callable[[], None]


@pytest.fixture
def tmpfs(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(params=[pytest.param("tmpfs", marks=needs_root), "max_page_count"])
def full_disk(request, tmp_path):
    if request.param == "tmpfs":
        path = request.getfixturevalue("tmpfs")
        return FullDisk(
            path, [GANGD], lambda: subprocess.run(["mount", "-o", "remount,size=8m", str(path)], check=True)
        )
    cap = tmp_path / "cap"
    cap.write_text("8")
    return FullDisk(tmp_path / "state", [sys.executable, "-c", CAPPED, str(cap)], lambda: cap.write_text("none"))


@pytest.fixture
def full_trace_dir(request, tmp_path):
    """A trace directory that refuses every trace: a full tmpfs as root, an unwritable directory
    otherwise (root writes through permission bits)."""
    if ROOT:
        return request.getfixturevalue("tmpfs")
    path = tmp_path / "traces"
    path.mkdir(mode=0o555)
    return path


def get(address: str, path: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}{path}", timeout=5) as response:
        return response.read().decode()


def journal_metric(address: str) -> float:
    line = next(x for x in get(address, "/metrics").splitlines() if x.startswith("gangd_journal_writable "))
    return float(line.split()[1])


def test_disk_full_is_a_state_and_the_station_resumes(processes, full_disk):
    state = full_disk.dir
    address = f"127.0.0.1:{free_port()}"
    daemon: Process = processes(
        [*full_disk.gangd, "run", "--simulate", "4", "--time-scale", "0", "--state-dir", str(state)]
        + ["--http-address", address]
    )
    full = daemon.wait_entry(
        lambda e: e["event"] == "board waits: its job could not be recorded", 60, "the journal filling up"
    )
    assert full["reason"].startswith(f"state directory full: {state}, ")
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
    full_disk.room()
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
    store = RecordStore(state / "records.sqlite")
    rows = {row["id"]: row for row in store.jobs()}
    store.close()
    assert not [r for r in rows.values() if r["result"] == "running"]
    assert {i: rows[i]["result"] for i in finished} == finished
    assert all(rows[i]["finished"] is not None for i in finished)
    assert "Traceback" not in daemon.stderr


def test_a_full_trace_directory_drops_traces_counted_and_the_jobs_go_on(processes, full_trace_dir, tmp_path):
    """Traces of failing boards (the default keeps them) into a 400 KiB tmpfs: once it is full
    each trace is dropped with a warning and gangd_traces_dropped_total; the boards' jobs and
    records go on, and no half-written trace is left taking the space."""
    address = f"127.0.0.1:{free_port()}"
    state = tmp_path / "records"
    daemon: Process = processes(
        [GANGD, "run", "--simulate", "4", "--time-scale", "0", "--state-dir", str(state), "--http-address", address]
        + ["--trace", str(full_trace_dir), "--fault", "status:cmd=write-memory,code=10200"]
    )
    daemon.wait_entry(lambda e: e["event"] == "trace not written", 30, "a trace dropped")
    finished = sum(e["event"] == "job finished" for e in daemon.json_lines())
    wait_for(
        lambda: sum(e["event"] == "job finished" for e in daemon.json_lines()) >= finished + 8, 60, "jobs going on"
    )
    dropped = next(x for x in get(address, "/metrics").splitlines() if x.startswith("gangd_traces_dropped_total "))
    assert float(dropped.split()[1]) >= 1
    assert daemon.stop() == 0
    assert not list(full_trace_dir.glob("*.tmp"))
