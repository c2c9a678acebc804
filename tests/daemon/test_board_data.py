"""Per-board data: a serial number or a list value per board, unique, durable, written and recorded."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
import trio

from gangd.config.recipe import BoardData, FusePlan, FuseWord
from gangd.service.journal import JournalKeeper
from gangd.service.records import DataExhausted, RecordStore
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.source import SimHubSource
from gangd.station.station import Station

SERIAL_AT = 0x6010_0000


def with_data(recipe, *entries, fuses=None):
    return dataclasses.replace(recipe, board_data=entries, fuses=fuses or recipe.fuses)


@pytest.mark.trio
async def test_each_board_gets_its_own_serial_in_flash_and_record(line, recipe, store):
    serial = BoardData("serial", "counter", format="SN-{:06d}", start=100, step=5, address=SERIAL_AT, size=16)
    run = await line(4, recipe_override=with_data(recipe, serial))
    results = await run.wait_results(4)
    assert {r.result for r in results} == {"success"}
    seen = {}
    for result in results:
        value = result.board_data["serial"]
        flash = run.hub.board(result.port).flash_image(SERIAL_AT, 16)
        assert flash == value.encode() + b"\xff" * (16 - len(value))
        seen[value] = result.board_id
    assert sorted(seen) == ["SN-000100", "SN-000105", "SN-000110", "SN-000115"]
    records = {row["board_id"]: row["board_data"] for row in store.jobs()}
    assert all(records[board] == {"serial": value} for value, board in seen.items())
    assert sorted(a["value"] for a in store.allocations()) == sorted(seen)


@pytest.mark.trio
async def test_an_exhausted_list_stops_new_jobs_until_it_is_extended(line, recipe, store, rt1020, tmp_path):
    macs = tmp_path / "macs.txt"
    macs.write_text("# MAC addresses for this batch\n00:04:9f:00:00:01\n")
    mac = BoardData("mac", "list", list_file=str(macs), address=SERIAL_AT, encoding="hex", size=6)
    run = await line(2, recipe_override=with_data(recipe, mac), plug=False)
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=9)
    run.hub.plug("1-1.1", factory())
    first = (await run.wait_results(1))[0]
    assert first.result == "success" and first.board_data == {"mac": "00:04:9f:00:00:01"}
    assert run.hub.board("1-1.1").flash_image(SERIAL_AT, 6) == bytes.fromhex("00049f000001")
    run.hub.plug("1-1.2", factory())
    second = (await run.wait_results(2))[1]
    assert (second.result, second.step) == ("stopped", "take-board-data")
    assert "exhausted" in second.reason and "macs.txt" in second.reason
    assert run.station.status()["halted"] == second.halt
    assert not run.hub.board("1-1.2").commands("write-memory")  # left as it came: nothing written
    # A new board is left alone while the list is empty ...
    run.hub.unplug("1-1.1")
    run.hub.plug("1-1.1", factory())
    await run.station_idle_with_reason("1-1.1", "exhausted")
    assert len(run.station.results) == 2
    # ... and once the list has values again, the next board gets one.
    macs.write_text(macs.read_text() + "00:04:9f:00:00:02\n")
    run.hub.unplug("1-1.1")
    run.hub.plug("1-1.1", factory())
    third = (await run.wait_results(3))[2]
    assert third.result == "success" and third.board_data == {"mac": "00:04:9f:00:00:02"}


@pytest.mark.trio
async def test_a_value_is_burned_into_a_fuse_under_the_fuse_rules(line, recipe, rt1020, store):
    word = rt1020.fuse("MAC_ADDR0") if any(f.name == "MAC_ADDR0" for f in rt1020.fuses) else rt1020.fuses[-1]
    serial = BoardData("serial", "counter", start=0x1234, fuse=FuseWord(word.name, word.index, 0))
    run = await line(1, recipe_override=with_data(recipe, serial, fuses=FusePlan("if-blank", ())))
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    assert run.hub.board("1-1.1").otp.read(word.index) == 0x1234
    assert [f["action"] for f in result.fuses] == ["burn"]


def test_a_board_that_comes_back_gets_its_own_value_and_no_other_board_does(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite")
    serial = BoardData("serial", "counter", format="{:04d}", address=SERIAL_AT)
    first = store.start(port="1-1.1", label="A1", serial="S", family="mimxrt1020", images=[], started=1.0)
    assert store.allocate(first, "board-a", [serial]) == {"serial": "0001"}
    again = store.start(port="1-1.2", label="A2", serial="S", family="mimxrt1020", images=[], started=2.0)
    assert store.allocate(again, "board-a", [serial]) == {"serial": "0001"}  # interrupted, back again
    other = store.start(port="1-1.3", label="A3", serial="T", family="mimxrt1020", images=[], started=3.0)
    assert store.allocate(other, "board-b", [serial]) == {"serial": "0002"}
    assert [(a["value"], a["board_id"], a["record_id"]) for a in store.allocations()] == [
        ("0001", "board-a", first),
        ("0002", "board-b", other),
    ]
    assert store.jobs()[1]["board_data"] == {"serial": "0001"}
    store.close()


def test_an_exhausted_list_allocates_nothing(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite")
    (tmp_path / "list.txt").write_text("only-one\n")
    entry = BoardData("key", "list", list_file=str(tmp_path / "list.txt"), address=SERIAL_AT)
    serial = BoardData("serial", "counter", address=SERIAL_AT + 0x1000)
    first = store.start(port="1-1.1", label="A1", serial="S", family="f", images=[], started=1.0)
    store.allocate(first, "a", [serial, entry])
    second = store.start(port="1-1.1", label="A1", serial="S", family="f", images=[], started=1.0)
    with pytest.raises(DataExhausted):
        store.allocate(second, "b", [serial, entry])
    # The transaction took nothing: the counter value was not spent on a board that got no key.
    assert [a["value"] for a in store.allocations() if a["name"] == "serial"] == ["1"]
    store.close()


class LockedAtAllocation(RecordStore):
    """A store whose first allocation meets the write lock of another process (a backup tool
    taking it just then): the real SQLITE_BUSY past the busy timeout, not a stand-in."""

    def __init__(self, path) -> None:
        super().__init__(path, busy_timeout_s=0.05)
        self.backup = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.locked = False

    def allocate(self, record_id, board_id, entries):
        if not self.locked:
            self.locked = True
            self.backup.execute("BEGIN IMMEDIATE")
        return super().allocate(record_id, board_id, entries)


@pytest.mark.trio
async def test_a_board_whose_values_cannot_be_recorded_waits_on_its_port_and_gets_them_later(
    rt1020, recipe, nursery, tmp_path
):
    """The journal refuses the write of a board's values: its job ends `stopped` saying so, nothing
    was written to the board, and the board is not finished: it stays on its port (whoever takes
    finished boards is told it waits) and gets a new job, and one value, once the journal takes
    writes again. Without the wait the board ends `stopped` for good, its port idle."""
    store = LockedAtAllocation(tmp_path / "records.sqlite")
    keeper = JournalKeeper(store, retry_s=0.05)
    await nursery.start(keeper.run)
    hub = SimHub(1, seed=3)
    hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=11)())
    serial = BoardData("serial", "counter", format="SN-{:04d}", address=SERIAL_AT, size=16)
    station = Station(rt1020, with_data(recipe, serial), {"1-1.1": "A1"}, records=store, journal=keeper)
    heard: list = []
    changed = trio.Event()

    def listener(result) -> None:
        heard.append(result)
        changed.set()

    station.listeners.append(listener)
    await nursery.start(station.run, SimHubSource(hub).run)
    with trio.fail_after(20):
        while not heard:
            await changed.wait()
            changed = trio.Event()
    waited = heard[0]
    assert (waited.result, waited.step, waited.board_waits) == ("stopped", "take-board-data", True)
    assert waited.reason.startswith(f"per-board data not recorded: journal locked by another process: {store.path}")
    assert not hub.board("1-1.1").commands("write-memory")  # identified only: nothing written
    with trio.fail_after(10):
        while not (station.ports["1-1.1"].state == "disabled" and store.fault):
            await station.changes.wait(station.changes.version)
    assert len(heard) == 1  # no second job while the journal is locked

    store.backup.execute("ROLLBACK")  # the backup is done: the same board, a new job, its value
    with trio.fail_after(20):
        while len(heard) < 2:
            await changed.wait()
            changed = trio.Event()
    again = heard[1]
    assert again.result == "success", again.reason
    assert again.board_id == waited.board_id and again.board_data == {"serial": "SN-0001"}
    assert hub.board("1-1.1").flash_image(SERIAL_AT, 7) == b"SN-0001"
    rows = {row["id"]: row for row in store.jobs()}
    assert rows[waited.record_id]["result"] == "stopped" and "waits for the journal" in rows[waited.record_id]["reason"]
    assert [(a["value"], a["record_id"]) for a in store.allocations()] == [("SN-0001", again.record_id)]
    store.backup.close()
    hub.close()
    store.close()
