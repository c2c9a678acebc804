"""The daemon core on the simulated hub: one job per port, isolation, replug, bad input."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from gangd.core.events import ADD, REMOVE, PortEvent
from gangd.engine.plan import plan

from .conftest import IMAGE

pytestmark = pytest.mark.trio


async def test_eight_boards_each_programmed_on_its_own_port(line, recipe):
    run = await line(8)
    results = await run.wait_results(8)
    assert sorted(r.port for r in results) == sorted(run.hub.ports)
    assert {r.result for r in results} == {"success"}
    for path in run.hub.ports:
        board = run.hub.board(path)
        assert board.flash_image(0x6000_0000, len(IMAGE)) == IMAGE
        # Every command of this board's flow reached this board, in order, ending with the reset.
        assert [r.command for r in board.commands() if r.stage == "flashloader"][-1] == "reset"
        assert len(board.commands("write-memory")) == 1
    assert all(port.progress == 1.0 for port in run.station.ports.values())  # weighted steps all done
    # The steps the engine ran are the plan's, in order.
    assert [s.name for s in results[0].steps] == [step.name for step in plan(recipe)]


async def test_a_hung_board_costs_its_own_port_only(line):
    run = await line(8, faults={"1-1.3": ("hang:cmd=write-memory",)})
    results = await run.wait_results(8)
    by_port = run.by_port()
    stuck = by_port.pop("1-1.3")
    assert {r.result for r in by_port.values()} == {"success"}
    assert (stuck.result, stuck.step) == ("failed", "write")
    assert "deadline" in stuck.reason
    # The seven others finished their whole flow while port 3 was still stuck in its call.
    assert results[-1] is stuck
    stuck_ended = stuck.started + stuck.duration_s
    assert all(r.started + r.duration_s < stuck_ended for r in by_port.values())


async def test_flashloader_that_never_reappears_fails_at_the_replug(line):
    run = await line(2, faults={"1-1.2": ("no-reenumerate",)})
    await run.wait_results(2)
    result = run.by_port()["1-1.2"]
    assert (result.result, result.step) == ("failed", "wait-replug")
    assert "1-1.2" not in result.reason  # the port is its own field …
    assert "did not appear" in result.reason and "2 s" in result.reason  # … and the deadline is named
    assert run.by_port()["1-1.1"].result == "success"


async def test_board_pulled_mid_write_is_removed_and_the_port_takes_the_next(line, rt1020):
    run = await line(1, faults={"1-1.1": ("disconnect:cmd=write-memory,after=8192",)})
    first = (await run.wait_results(1))[0]
    assert (first.result, first.step) == ("removed", "write")
    from gangd.sim import BoardFactory, TimingModel

    run.hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=99)())
    second = (await run.wait_results(2))[1]
    assert second.result == "success"


async def test_bad_input_is_skipped_and_the_daemon_keeps_running(line, rt1020):
    run = await line(2)
    await run.wait_results(2)
    station = run.station
    # Ids that are not this family's ROM or flashloader, on a configured port.
    station.dispatch(PortEvent(ADD, "1-1.1", 0x046D, 0xC31C, None, "/dev/null"))
    # A port outside the configuration.
    station.dispatch(PortEvent(ADD, "2-4", 0x1FC9, 0x0130, None, "/tmp/nowhere"))
    # A device that vanished between its event and the open: its removal follows.
    run.hub.unplug("1-1.2")
    await trio.testing.wait_all_tasks_blocked()  # the real removal is routed first
    station.dispatch(PortEvent(ADD, "1-1.2", 0x1FC9, 0x0130, "GHOST", "/tmp/gangd-no-such-node"))
    station.dispatch(PortEvent(REMOVE, "1-1.2", 0x1FC9, 0x0130, "GHOST", "/tmp/gangd-no-such-node"))
    ghost = (await run.wait_results(3))[2]
    assert (ghost.port, ghost.result, ghost.step) == ("1-1.2", "removed", "load-flashloader")
    assert "2-4" not in station.ports
    # Still serving: a fresh board on the freed port is programmed.
    from gangd.sim import BoardFactory, TimingModel

    run.hub.plug("1-1.2", BoardFactory(rt1020, TimingModel(time_scale=0), seed=5)())
    assert (await run.wait_results(4))[3].result == "success"


async def test_all_ports_taken_when_none_are_configured(line):
    run = await line(3, configured=False)
    await run.wait_results(3)
    assert set(run.station.ports) == {"1-1.1", "1-1.2", "1-1.3"}


async def test_stop_lets_running_jobs_end_at_a_step_boundary(line):
    run = await line(2)
    run.station.stop()
    with trio.fail_after(5):
        await run.station.wait_jobs_done()
    assert all(r.result in ("stopped", "success") for r in run.station.results)


async def test_a_board_swapped_during_a_replug_is_not_taken_for_the_old_one(line, rt1020, store):
    """The port names the board, but a swap while it was off the bus is told by its serial:
    the old job ends 'removed' and the newcomer gets a job and a record of its own."""
    from gangd.sim import BoardFactory, TimingModel

    run = await line(1, faults={"1-1.1": ("no-reenumerate",)})
    await run.until(lambda: run.station.ports["1-1.1"].step == "wait-replug")
    old = run.hub.unplug("1-1.1")  # the dark board is taken out …
    spec = BoardFactory(rt1020, TimingModel(time_scale=0), seed=77)()
    spec.serial = "SWAPPED-IN"
    new = run.hub.plug("1-1.1", spec)  # … and another put in
    first, second = await run.wait_results(2)
    assert (first.serial, first.result, first.step) == (old.serial, "removed", "wait-replug")
    assert "another board" in first.reason
    assert (second.serial, second.result, second.board_id) == (new.serial, "success", f"{new.uuid:016x}")
    assert new.flash_image(0x6000_0000, len(IMAGE)) == IMAGE
    assert [r["serial"] for r in store.jobs()] == [old.serial, new.serial]


async def test_a_board_swapped_in_while_the_last_one_rebooted_gets_its_own_job(line, rt1020, store):
    """The operator takes a programmed board out during its reboot and puts the next one in: the
    newcomer is seen while the station watches for the finished board's return, and the station
    starts a job on it at once."""
    from gangd.sim import BoardFactory, TimingModel

    slow_reboot = TimingModel(
        time_scale=1.0,
        report_interval_s=0,
        page_program_s=0,
        sector_erase_s=0,
        block_erase_s=0,
        fuse_program_s=0,
        reenumeration_s=0.3,
    )
    run = await line(1, plug=False)
    first_board = run.hub.plug("1-1.1", BoardFactory(rt1020, slow_reboot, seed=31)())
    await run.wait_results(1)  # the job ends when the reset is acknowledged, before the reboot
    run.hub.unplug("1-1.1")
    newcomer = BoardFactory(rt1020, TimingModel(time_scale=0), seed=32)()
    newcomer.serial = "SWAPPED-IN"
    run.hub.plug("1-1.1", newcomer)
    first, second = await run.wait_results(2)
    assert (first.serial, first.result) == (first_board.serial, "success")
    assert (second.serial, second.result) == ("SWAPPED-IN", "success")
    assert [r["serial"] for r in store.jobs()] == [first_board.serial, "SWAPPED-IN"]


async def test_a_duplicate_enumeration_is_one_event(rt1020):
    """Coldplug and the monitor may both report the board that is there at start: one add."""
    from gangd.station.port import Port

    port = Port("1-1.1", "A1", rt1020)
    board = PortEvent(ADD, "1-1.1", 0x1FC9, 0x0130, "S1", "/dev/hidraw3")
    for event in (board, board, PortEvent(REMOVE, "1-1.1", 0x1FC9, 0x0130, "S1", "/dev/hidraw3")):
        port.deliver(event)
    with trio.fail_after(1):
        assert await port.next_event() == board
        assert (await port.next_event()).action == REMOVE


async def test_simulated_boards_are_served_on_trios_own_thread(line, monkeypatch):
    """A simulated board's node is a socket: the job's calls wait on trio, so every command leaves
    from trio's thread and no worker thread is taken per call (engine/context.py)."""
    import threading

    from gangd.io.transport import FdHidDevice

    senders: set[int] = set()
    write = FdHidDevice.write

    def spied(self, data, timeout=None):
        senders.add(threading.get_ident())
        return write(self, data, timeout)

    monkeypatch.setattr(FdHidDevice, "write", spied)
    run = await line(4)
    assert {r.result for r in await run.wait_results(4)} == {"success"}
    assert senders == {threading.get_ident()}
