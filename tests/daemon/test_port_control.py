"""The operator's port controls on a running station: a disabled port starts no job and leaves
its board alone until enabled; acknowledging a suspect port clears the flag and judges it afresh."""

from __future__ import annotations

import pytest
import trio

from gangd.service.view import StationView, instruction, shown_state
from gangd.sim import BoardFactory, TimingModel
from gangd.station.station import UnknownPort

from ..support import until


async def settle(station, port: str, serial: str) -> None:
    """Until the port's task has taken in the board's arrival and has nothing left to do."""

    def taken_in() -> bool:
        attached = station.ports[port].attached
        return attached is not None and attached.serial == serial

    await until(station.changes, taken_in, f"{port}'s task to take in board {serial}", timeout=5)
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)


async def test_a_disabled_port_leaves_its_board_alone_until_enabled(line, rt1020):
    run = await line(2, plug=False)
    station = run.station
    port = station.set_enabled("L0", False)  # by label
    assert port.disabled and port.shown_state == "disabled"
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=9)
    held = run.hub.plug("1-1.1", factory())
    run.hub.plug("1-1.2", factory())
    await run.wait_results(1)
    await settle(station, "1-1.1", held.serial)
    assert [r.port for r in station.results] == ["1-1.2"]
    assert held.log == []  # not one command: the board was left alone
    view = StationView(station)
    tile = view.tile(port)
    assert (tile["state"], tile["board"], tile["present"]) == ("disabled", held.serial, True)

    # Taken out and put back while disabled: still nothing.
    run.hub.unplug("1-1.1")
    await until(station.changes, lambda: station.ports["1-1.1"].attached is None, "the unplug seen", timeout=5)
    run.hub.plug("1-1.1", held)
    await settle(station, "1-1.1", held.serial)
    assert held.log == [] and len(station.results) == 1

    station.set_enabled("1-1.1", True)  # by path
    results = await run.wait_results(2)
    assert (results[1].port, results[1].result, results[1].serial) == ("1-1.1", "success", held.serial)


async def test_disabling_a_busy_port_lets_its_job_finish(line, rt1020):
    run = await line(1, plug=False)
    station = run.station
    factory = BoardFactory(rt1020, TimingModel(time_scale=0.05), seed=9)
    first = run.hub.plug("1-1.1", factory())
    await until(station.changes, lambda: station.ports["1-1.1"].job is not None, "a job on 1-1.1")
    station.set_enabled("L0", False)
    (result,) = await run.wait_results(1)
    assert result.result == "success" and result.serial == first.serial
    run.hub.unplug("1-1.1")
    second = run.hub.plug("1-1.1", factory())
    await settle(station, "1-1.1", second.serial)
    assert second.log == [] and len(station.results) == 1
    assert station.ports["1-1.1"].shown_state == "disabled"


async def test_acknowledging_a_suspect_port(line):
    run = await line(1)
    await run.wait_results(1)
    port = run.station.ports["1-1.1"]
    port.suspect = True
    assert shown_state(port) == "suspect"
    assert instruction("suspect", port) == "Move boards off suspect port L0; check its cable and hub, then acknowledge"
    version = run.station.changes.version
    run.station.acknowledge("L0")
    assert not port.suspect and run.station.changes.version > version
    with pytest.raises(UnknownPort):
        run.station.acknowledge("Z9")
    with pytest.raises(UnknownPort):
        run.station.set_enabled("1-9.9", False)
