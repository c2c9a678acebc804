"""When a finished board is reset (gangd/core/scheduling.py): not while a board of its controller
is admitted and still in its ROM (its flashloader would queue behind the reboot), unless its root
port has a board waiting for the slot it holds."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from gangd.core.bus import ADDRESS0_S, Admission
from gangd.core.scheduling import HOLD_MARGIN_S

pytestmark = pytest.mark.trio

FINISHED = "1-1.1"  # a board done with its work, in its flashloader, about to be reset


async def _finished_board(budget: int | None = 8) -> Admission:
    admission = Admission(budget)
    admission.device_seen(FINISHED, flashloader=True)
    await admission.enter(FINISHED, lambda: None)
    return admission


async def _reset_when_allowed(admission: Admission, done: list[str]) -> None:
    await admission.reset_turn(FINISHED)
    done.append(FINISHED)


async def _in_its_rom_admitted(admission: Admission, path: str) -> None:
    admission.device_seen(path, flashloader=False)  # a ROM on the bus
    await admission.enter(path, lambda: None)  # admitted: it gets its flashloader, then jumps


async def test_a_reset_waits_for_a_board_about_to_jump_on_its_controller():
    admission = await _finished_board()
    await _in_its_rom_admitted(admission, "1-2.1")  # another root port of the same controller
    done: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_reset_when_allowed, admission, done)
        await trio.testing.wait_all_tasks_blocked()
        assert not done and admission.holding == {FINISHED}  # held: shown on /status
        admission.device_left("1-2.1")  # it jumped: its flashloader asks before the reboot would
    assert done == [FINISHED] and not admission.holding


async def test_a_reset_is_not_held_for_a_flashloader_already_on_its_way():
    """A board that has jumped asked for its enumeration before a reboot asked for now would."""
    admission = await _finished_board()
    await admission.enter("1-2.1", lambda: None)  # admitted, its ROM gone: booting its flashloader
    with trio.fail_after(1):
        await admission.reset_turn(FINISHED)


async def test_a_reset_is_not_held_for_another_controller():
    admission = await _finished_board()
    await _in_its_rom_admitted(admission, "2-1.1")  # bus 2: a queue of its own
    with trio.fail_after(1):
        await admission.reset_turn(FINISHED)
    assert admission.flashloaders_to_come(FINISHED) == 0


async def test_a_board_waiting_for_the_slot_releases_a_held_reset():
    """The finished board holds one of its root port's slots: holding its reset would hold back
    the waiting board's jump, the enumeration the hold is for."""
    admission = await _finished_board(budget=2)
    await _in_its_rom_admitted(admission, "1-1.2")  # the root port is full
    done: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_reset_when_allowed, admission, done)
        await trio.testing.wait_all_tasks_blocked()
        assert not done
        admission.device_seen("1-1.3", flashloader=False)
        nursery.start_soon(admission.enter, "1-1.3", lambda: None)  # waits for room on 1-1
        await trio.testing.wait_all_tasks_blocked()
        assert done == [FINISHED]
        admission.device_left(FINISHED)  # the reset board leaves: the waiting one is admitted
        admission.leave(FINISHED)


async def test_a_board_that_never_jumps_holds_a_reset_for_its_turn_only(autojump_clock):
    admission = await _finished_board()
    await _in_its_rom_admitted(admission, "1-2.1")  # hung in its ROM
    started = trio.current_time()
    await admission.reset_turn(FINISHED)
    assert trio.current_time() - started == pytest.approx(ADDRESS0_S + HOLD_MARGIN_S)


async def test_status_shows_the_resets_held_per_controller(line):
    """The station's /status lists, under each controller, the finished boards whose reset waits."""
    run = await line(4, plug=False, hub_options={"root_ports": 2, "controllers": 2})
    admission = run.station.admission
    finished, about_to_jump = "2-1.1", "2-1.2"
    admission.device_seen(finished, flashloader=True)
    await admission.enter(finished, lambda: None)
    await _in_its_rom_admitted(admission, about_to_jump)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(admission.reset_turn, finished)
        await trio.testing.wait_all_tasks_blocked()
        controllers = run.station.status()["controllers"]
        assert controllers["usb2"]["resets_held"] == [finished] and controllers["usb1"]["resets_held"] == []
        admission.device_left(about_to_jump)
    assert run.station.status()["controllers"]["usb2"]["resets_held"] == []
