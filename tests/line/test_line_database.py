"""A line of stations on one real PostgreSQL: every record of every station reaches the line
database exactly once, serial numbers are unique across the line, through a database outage and a
station killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

from gangd.config.loader import LineSettings
from gangd.service.line import SCHEMA_VERSION, LineDatabase
from tests.line.conftest import PASSWORD, Postgres
from tests.station.conftest import status, write_config
from tests.support import Gangd, free_port, wait_for

BOARDS = 30
SERIAL = """
[[board_data]]
name = "serial"
source = "counter"
format = "SN{:06d}"
start = 1
address = 0x60100000
size = 16
"""


def station_config(directory: Path, name: str, postgres: Postgres, serials: bool) -> tuple[Path, str]:
    directory.mkdir()
    address = f"127.0.0.1:{free_port()}"
    path = write_config(directory, [f"{name}1", f"{name}2", f"{name}3"], address, token=None)
    text = path.read_text().replace("[station]\n", f'[station]\nname = "{name}"\n', 1)
    text += f'[line]\ndatabase = "{postgres.url}"\npassword_file = "{postgres.password_file}"\n'
    if serials:
        text += SERIAL
    path.write_text(text)
    return path, address


def start(config: Path, address: str, state: Path, log: Path, seed: int) -> Gangd:
    args = ["--simulate", "3", "--config", str(config), "--boards", str(BOARDS), "--time-scale", "0.3"]
    args += ["--replace-delay", "0.2", "--seed", str(seed), "--state-dir", str(state), "--log-level", "info"]
    gangd = Gangd(args, address, log)
    gangd.wait_ready()
    return gangd


def local_rows(state: Path) -> list[tuple[int, str, int]]:
    db = sqlite3.connect(state / "records.sqlite")
    try:
        return db.execute("SELECT id, result, delivered FROM jobs ORDER BY id").fetchall()
    finally:
        db.close()


def line_rows(postgres: Postgres) -> list[tuple]:
    try:
        with postgres.connect() as conn:
            return conn.execute("SELECT station, local_id, result, board_id, board_data FROM records").fetchall()
    except Exception:
        return []


def settled(state: Path, boards: int) -> bool:
    """The station's operator is done (`boards` finished rows) and all are delivered."""
    rows = local_rows(state)
    finished = [r for r in rows if r[1] != "running"]
    return len(finished) >= boards and len(finished) == len(rows) and all(r[2] for r in rows)


def test_two_stations_share_the_line_database_through_an_outage_and_a_sigkill(postgres, tmp_path):
    a_config, a_address = station_config(tmp_path / "a", "a", postgres, serials=True)
    b_config, b_address = station_config(tmp_path / "b", "b", postgres, serials=True)
    c_config, c_address = station_config(tmp_path / "c", "c", postgres, serials=False)  # needs no value
    settings = LineSettings(postgres.url, str(postgres.password_file))
    line = LineDatabase(settings, "test")
    assert line.upgrade() == SCHEMA_VERSION
    assert line.upgrade() == SCHEMA_VERSION  # idempotent
    line.close()

    states = {name: tmp_path / name / "state" for name in "abc"}
    logs = {name: tmp_path / name / "gangd.log" for name in "abc"}
    a = start(a_config, a_address, states["a"], logs["a"], seed=1)
    b = start(b_config, b_address, states["b"], logs["b"], seed=2)
    c = start(c_config, c_address, states["c"], logs["c"], seed=3)
    stations = {"a": a, "b": b, "c": c}
    try:
        assert status(a_address)["station"] == "a" and status(a_address)["line_database"] == "reachable"
        wait_for(lambda: len(line_rows(postgres)) >= 6, 120, "six records in the line database")

        # The database goes away: stations needing a serial wait and say so; c programs on.
        postgres.stop()
        c_before = len([r for r in local_rows(states["c"]) if r[1] == "success"])
        for address in (a_address, b_address):
            wait_for(lambda addr=address: status(addr)["line_database"] == "unreachable", 60, "unreachable")
            wait_for(lambda addr=address: "line database" in (status(addr)["halted"] or ""), 120, "a waiting port")
        waiting = status(a_address)
        assert any("line database" in (p["last_reason"] or "") for p in waiting["ports"])
        a_during = len(local_rows(states["a"]))
        wait_for(
            lambda: len([r for r in local_rows(states["c"]) if r[1] == "success"]) >= c_before + 2,
            60,
            "station c programming on while the line database is away",
        )
        time.sleep(1)
        # No job of a started while away: its boards waited (untouched) for a serial.
        assert len(local_rows(states["a"])) == a_during
        postgres.start()
        for address in (a_address, b_address):
            wait_for(lambda addr=address: status(addr)["line_database"] == "reachable", 60, "reachable again")
            wait_for(lambda addr=address: status(addr)["halted"] is None, 60, "no longer halted")

        # b is killed mid-run and restarted on the same state directory.
        wait_for(lambda: any(r[1] == "running" for r in local_rows(states["b"])), 60, "a job running on b")
        b.process.send_signal(signal.SIGKILL)
        b.process.wait()
        targets = {"a": BOARDS, "b": len(local_rows(states["b"])) + BOARDS, "c": BOARDS}
        b = stations["b"] = start(b_config, b_address, states["b"], logs["b"], seed=4)

        for name in "abc":
            wait_for(lambda n=name: settled(states[n], targets[n]), 240, f"station {name} done and delivered")
    finally:
        for gangd in stations.values():
            gangd.stop()

    rows = line_rows(postgres)
    by_station: dict[str, list[int]] = defaultdict(list)
    for station, local_id, *_ in rows:
        by_station[station].append(local_id)
    for name in "abc":
        local = local_rows(states[name])
        delivered = [r[0] for r in local if r[2]]
        assert sorted(by_station[name]) == delivered, name  # every delivered row exactly once
        assert len(delivered) >= len(local) - 3, name  # at most the jobs stopped by SIGTERM remain
    assert any(r[2] == "interrupted" for r in rows if r[0] == "b")  # the SIGKILLed job, delivered
    serials: dict[str, set[str]] = defaultdict(set)
    for station, _, result, board_id, board_data in rows:
        if station in "ab" and result == "success":
            assert board_data.get("serial"), (station, board_data)
        if board_data.get("serial"):
            serials[board_data["serial"]].add(board_id)
    assert len(serials) >= 2 * BOARDS
    assert all(len(boards) == 1 for boards in serials.values()), "a serial handed to two boards"
    with postgres.connect() as conn:
        allocated = conn.execute("SELECT station, count(*) FROM board_data GROUP BY station").fetchall()
    assert {station for station, _ in allocated} == {"a", "b"}
    for name in "abc":
        assert PASSWORD not in logs[name].read_text()
    for name in "ab":
        entries = [json.loads(line) for line in logs[name].read_text().splitlines() if line.startswith("{")]
        assert all(e.get("station") == name for e in entries if e["event"] == "job finished")


def test_outbox_order_idempotent_delivery_and_the_line_commands(postgres, tmp_path):
    """The outbox stops at the first running row; a repeated delivery changes nothing; `gangd db
    upgrade` and `gangd records --line` work on the line database."""
    import subprocess

    from gangd.service.records import RecordStore
    from tests.station.conftest import GANGD

    config, _ = station_config(tmp_path / "s", "s", postgres, serials=False)
    upgrade = subprocess.run([GANGD, "db", "upgrade", "--config", str(config)], capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"version {SCHEMA_VERSION}" in upgrade.stdout

    store = RecordStore(tmp_path / "records.sqlite", station="s")
    common = {"port": "1-1.1", "label": "s1", "family": "mimxrt1020", "images": [], "started": time.time()}
    first, second, third = (store.start(**common) for _ in range(3))
    store.update(first, result="success", board_id="B1", finished=time.time())
    store.update(third, result="failed", board_id="B3", finished=time.time(), step="write-memory")
    assert [r["id"] for r in store.pending(10)] == [first]  # the second still runs: the third waits
    store.update(second, result="success", board_id="B2", finished=time.time())
    pending = store.pending(10)
    assert [r["id"] for r in pending] == [first, second, third] and pending[0]["station"] == "s"
    line = LineDatabase(LineSettings(postgres.url, str(postgres.password_file)), "s")
    assert line.deliver(pending) == 3
    assert line.deliver(pending) == 0  # delivered again after a crash: nothing doubles
    store.mark_delivered([r["id"] for r in pending])
    assert store.pending(10) == [] and store.undelivered() == 0
    line.close()
    store.close()

    listing = subprocess.run(
        [GANGD, "records", "--line", "--config", str(config), "--board", "B3", "--format", "jsonl"],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [(r["station"], r["local_id"], r["result"], r["step"]) for r in rows] == [
        ("s", third, "failed", "write-memory")
    ]
    table = subprocess.run(
        [GANGD, "records", "--line", "--config", str(config), "--station", "s"], capture_output=True, text=True
    )
    assert table.returncode == 0 and table.stdout.count("\n") == 4 and "B2" in table.stdout


def test_the_line_hands_a_board_back_its_own_values_and_refuses_an_exhausted_list(postgres, tmp_path):
    """The per-board data policy (gangd/service/board_data.py) on PostgreSQL, as the SQLite store's
    tests check it: a board that comes back (to any station) gets its own values, another board
    the next unused ones, and a list with none left is refused with the line named."""
    import pytest

    from gangd.config.recipe import BoardData
    from gangd.core.errors import DataExhausted

    macs = tmp_path / "macs.txt"
    macs.write_text("# the line's MACs\n00:11:22:33:44:01\n\n00:11:22:33:44:02\n")
    serial = BoardData("serial", "counter", format="SN{:04d}", start=10, step=5, address=0x60100000)
    mac = BoardData("mac", "list", list_file=str(macs), address=0x60200000)
    settings = LineSettings(postgres.url, str(postgres.password_file))
    a, b = LineDatabase(settings, "a"), LineDatabase(settings, "b")
    try:
        assert a.upgrade() == SCHEMA_VERSION
        assert a.allocate(1, "board-1", [serial, mac]) == {"serial": "SN0010", "mac": "00:11:22:33:44:01"}
        assert b.allocate(1, "board-2", [serial, mac]) == {"serial": "SN0015", "mac": "00:11:22:33:44:02"}
        # board-1 comes back at the other station: the same values, nothing new handed out.
        assert b.allocate(2, "board-1", [serial, mac]) == {"serial": "SN0010", "mac": "00:11:22:33:44:01"}
        with pytest.raises(DataExhausted, match=r"exhausted on the line \(.*macs.txt: all 2 handed out\)"):
            a.allocate(2, "board-3", [serial, mac])
        # The refused allocation took nothing: board-3's serial was rolled back with its MAC.
        assert a.allocate(3, "board-4", [serial]) == {"serial": "SN0020"}
    finally:
        a.close()
        b.close()


def read_only_now(postgres: Postgres) -> bool:
    with postgres.connect() as session:
        return session.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"


def test_a_line_database_that_refuses_writes_holds_the_outbox(postgres, tmp_path):
    """A read-only line database (a standby after a failover) answers but takes no write: the
    delivery is LineUnavailable naming it (the outbox holds, per-board data waits), not a crash."""
    import pytest

    from gangd.core.errors import LineUnavailable
    from gangd.service.records import RecordStore

    store = RecordStore(tmp_path / "records.sqlite", station="s")
    row = store.start(port="1-1.1", label="s1", family="mimxrt1020", images=[], started=time.time())
    store.update(row, result="success", board_id="B1", finished=time.time())
    line = LineDatabase(LineSettings(postgres.url, str(postgres.password_file)), "s")
    line.ping()  # the schema is made while the database still takes writes
    admin = postgres.connect()
    admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    admin.execute("SELECT pg_reload_conf()")  # only signals the postmaster: the reload comes later
    try:
        # A new session shows the setting once the postmaster has reloaded it, and by then it has
        # signalled every backend, the line's among them (which applies it at its next command).
        wait_for(lambda: read_only_now(postgres), 30, "the read-only setting reloaded")
        with pytest.raises(LineUnavailable, match="line database refuses writes: .*read-only"):
            line.deliver(store.pending(10))
        with pytest.raises(LineUnavailable, match="refuses writes"):
            line.allocate(row, "B1", [])
    finally:
        admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")
        admin.close()
    assert line.deliver(store.pending(10)) == 1  # writable again: delivered
    line.close()
    store.close()
