"""Admission follows the bus as it is, not gangd's own jobs: every flashloader-stage device on a
root port holds one of its slots until it leaves the flashloader stage, whoever started it (a
board hung in its flashloader after its job failed, boards a killed gangd left there, a board on a
port this station does not program)."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from gangd.core.bus import Admission
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.board import FLASHLOADER
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.station.station import Station

from ..conftest import IMAGE

pytestmark = pytest.mark.trio


def _queued(run, path: str):
    return lambda: run.station.ports[path].state == "queued"


async def test_a_hung_flashloader_holds_its_slot_after_its_job_failed(line, rt1020, recipe):
    # Budget 1: the hung board's flashloader fills its root port for as long as it is on the bus.
    run = await line(2, plug=False, hub_options={"flashloader_budget": 1}, station_options={"bandwidth_budget": 1})
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=5)
    hung = factory()
    hung.faults = ("hang:cmd=write-memory,nth=1",)
    await trio.to_thread.run_sync(run.hub.plug, "1-1.1", hung)
    (first,) = await run.wait_results(1)
    assert first.result == "failed" and "replug" in first.reason, first.reason
    assert run.hub.in_flashloader["1-1"] == 1  # the job is over, the hung flashloader is not
    assert run.station.admission.occupancy("1-1") == 1

    await trio.to_thread.run_sync(run.hub.plug, "1-1.2", factory())
    await run.until(_queued(run, "1-1.2"))
    assert run.station.status()["root_ports"]["1-1"] == {"budget": 1, "in_use": 1, "queued": 1}

    await trio.to_thread.run_sync(run.hub.unplug, "1-1.1")  # the operator takes the hung board out
    results = await run.wait_results(2)
    second = next(r for r in results if r.port == "1-1.2")
    assert second.result == "success", second.reason
    assert not second.attempts  # admitted once there was room: the bus never refused it
    assert run.hub.peak_flashloaders["1-1"] == 1


async def test_a_flashloader_gangd_did_not_start_takes_a_slot(line, rt1020, recipe):
    run = await line(3, plug=False, hub_options={"flashloader_budget": 2}, station_options={"bandwidth_budget": 2})
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=6)
    # Two boards already in their flashloader, started by someone else (NXP's tool on a laptop),
    # on ports the operator keeps gangd's hands off.
    for path in ("1-1.1", "1-1.2"):
        run.station.set_enabled(path, False)
        await trio.to_thread.run_sync(run.hub.plug, path, dataclasses.replace(factory(), stage=FLASHLOADER))
    await run.until(lambda: run.station.admission.occupancy("1-1") == 2)

    await trio.to_thread.run_sync(run.hub.plug, "1-1.3", factory())
    await run.until(_queued(run, "1-1.3"))
    await trio.to_thread.run_sync(run.hub.unplug, "1-1.1")
    (result,) = await run.wait_results(1)
    assert result.port == "1-1.3" and result.result == "success" and not result.attempts, result.reason
    assert run.hub.peak_flashloaders["1-1"] == 2


async def test_after_a_restart_the_boards_left_in_their_flashloader_are_counted_and_taken_over(
    rt1020, recipe, store, nursery
):
    """A killed gangd left two boards in their flashloader; the new one finds them at coldplug and
    counts them against the budget before any job ran, so the ROM board beside them waits for
    room instead of being refused by the bus; the two are programmed from where they are."""
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=7)
    # The left-overs at real speed (their erase alone takes half a second): still in their
    # flashloader when the ROM board asks for room.
    real_speed = BoardFactory(rt1020, TimingModel(time_scale=1.0), seed=8)
    with SimHub(3, seed=3, flashloader_budget=2) as hub:
        hub.plug("1-1.1", dataclasses.replace(real_speed(), stage=FLASHLOADER))
        hub.plug("1-1.2", dataclasses.replace(real_speed(), stage=FLASHLOADER))
        hub.plug("1-1.3", factory())
        # The ROM board's port first: its task asks for room before the two left-overs' jobs run.
        ports = {"1-1.3": "C", "1-1.1": "A", "1-1.2": "B"}
        station = Station(rt1020, recipe, ports, records=store, power=SimPortPower(hub), bandwidth_budget=2)
        results: list = []
        done = trio.Event()
        station.listeners.append(lambda r: (results.append(r), len(results) == 3 and done.set()))
        await nursery.start(station.run, SimHubSource(hub).run)
        # Coldplug is done: both left-over flashloaders are counted, whatever the jobs have done.
        assert station.admission.on_bus == {"1-1.1", "1-1.2"}
        with trio.fail_after(30):
            await done.wait()
        by_port = {r.port: r for r in results}
        assert {p: r.result for p, r in by_port.items()} == dict.fromkeys(("1-1.1", "1-1.2", "1-1.3"), "success")
        for path in ("1-1.1", "1-1.2"):  # taken over in the flashloader: no flashloader load
            assert "load-flashloader" not in {s.name for s in by_port[path].steps}
        assert station.admission.waited["1-1"] == 1  # the ROM board waited ...
        assert not by_port["1-1.3"].attempts  # ... and was never refused by the bus
        assert hub.peak_flashloaders["1-1"] == 2
        assert not hub.errors


async def test_admission_counts_a_port_once_and_serves_first_come_first():
    admission = Admission(2)
    admission.device_seen("1-1.1", flashloader=True)
    await admission.enter("1-1.1", lambda: None)  # its flashloader is on the bus: no new slot
    assert admission.occupancy("1-1") == 1
    await admission.enter("1-1.2", lambda: None)
    order: list[str] = []

    async def wants(path: str) -> None:
        await admission.enter(path, lambda: None)
        order.append(path)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wants, "1-1.3")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wants, "1-1.4")
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        admission.leave("1-1.1")  # the job ended, but its flashloader is still on the bus
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        admission.device_left("1-1.1")  # it left the flashloader stage: one slot
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["1-1.3"]
        admission.device_seen("1-1.2", flashloader=False)  # back in its ROM, but its job still holds it
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["1-1.3"]
        admission.leave("1-1.2")
    assert order == ["1-1.3", "1-1.4"]
    assert admission.peak["1-1"] == 2


async def test_a_flashloader_the_bus_refused_is_power_cycled_and_programmed_not_stopped(line, rt1020, recipe):
    """The soak's lost record: a board programmed by a job that a SIGKILL interrupted before its
    record was complete came back, and its next job's flashloader was refused by a bus full of
    flashloaders the new gangd did not count; the job ended `stopped`, the operator took the board
    away, and the one board programmed had no success record. Now the bus is counted (above), and a
    flashloader refused all the same (one that appears while this board re-enumerates) is sent back
    to its ROM by its port's power and waits for room: the board ends programmed."""
    with_power = dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))
    run = await line(
        2,
        plug=False,
        recipe_override=with_power,
        timing=TimingModel(time_scale=1.0, report_interval_s=0, page_program_s=0),
        hub_options={"flashloader_budget": 1},
        station_options={"bandwidth_budget": 1},
    )
    factory = BoardFactory(rt1020, TimingModel(time_scale=1.0, report_interval_s=0, page_program_s=0), seed=8)
    run.station.set_enabled("1-1.1", False)  # a board gangd leaves alone
    await trio.to_thread.run_sync(run.hub.plug, "1-1.2", factory())
    port = run.station.ports["1-1.2"]
    await run.until(lambda: port.state == "waiting-replug")  # jumped: off the bus for 0.5 s
    # Another flashloader takes the root port's one slot in the meantime.
    await trio.to_thread.run_sync(run.hub.plug, "1-1.1", dataclasses.replace(factory(), stage=FLASHLOADER))
    await run.until(
        lambda: any(a.action == "power-cycle-port" for a in port.job.result.attempts) if port.job else False
    )
    assert port.job is not None and "USB bandwidth exhausted" in port.job.result.attempts[0].error
    await run.until(_queued(run, "1-1.2"))  # in its ROM again, waiting for room
    assert run.hub.board("1-1.2").power_cycles == 1
    await trio.to_thread.run_sync(run.hub.unplug, "1-1.1")
    (result,) = await run.wait_results(1, timeout=30)
    assert result.port == "1-1.2" and result.result == "success", result.reason
    assert [a.action for a in result.attempts] == ["power-cycle-port"]
    assert run.hub.board("1-1.2").flash_image(0x6000_0000, len(IMAGE)) == IMAGE


async def test_occupancy_counts_each_port_once_whichever_set_holds_it():
    """The per-domain counts kept as the bus and the jobs change agree with a count over every
    port (a port on the bus and admitted counts once; a released admission of a port still on
    the bus keeps counting), through any order of adds, removes, admissions and releases."""
    import random

    from gangd.core.bus import root_port

    rng = random.Random(7)
    admission = Admission(budget=None)
    paths = [f"1-{r}.{n}" for r in (1, 2, 3) for n in range(1, 6)]
    for _ in range(2000):
        path = rng.choice(paths)
        match rng.randrange(4):
            case 0:
                admission.device_seen(path, flashloader=rng.random() < 0.7)
            case 1:
                admission.device_left(path)
            case 2:
                await admission.enter(path, lambda: None)
            case 3:
                admission.leave(path)
        for domain in ("1-1", "1-2", "1-3"):
            expected = sum(1 for p in admission.on_bus | admission.admitted if root_port(p) == domain)
            assert admission.occupancy(domain) == expected
