from __future__ import annotations

import pytest
import trio

from gangd.service.records import RecordStore
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.station.station import Station

from ..conftest import IMAGE  # noqa: F401 - re-exported for the daemon tests


class Line:
    """A simulated hub, its boards and a running station, for one test."""

    def __init__(self, hub: SimHub, station: Station) -> None:
        self.hub = hub
        self.station = station
        self._results_changed = trio.Event()
        station.listeners.append(lambda _: self._results_changed.set())

    async def wait_results(self, count: int, timeout: float = 20) -> list:
        with trio.fail_after(timeout):
            while len(self.station.results) < count:
                await self._results_changed.wait()
                self._results_changed = trio.Event()
        return self.station.results

    async def until(self, predicate, timeout: float = 10) -> None:
        """Until `predicate()` holds, woken by the station's change signal (port state, step,
        progress), never by a timer."""
        with trio.fail_after(timeout):
            while not predicate():
                await self.station.changes.wait(self.station.changes.version)

    async def station_idle_with_reason(self, port: str, fragment: str, timeout: float = 10) -> None:
        """Until the port shows, in /status, a board left alone for `fragment`'s reason."""

        def shown() -> bool:
            entry = next(p for p in self.station.status()["ports"] if p["port"] == port)
            return fragment in (entry["last_reason"] or "") and entry["state"] == "disabled"

        await self.until(shown, timeout)

    def by_port(self) -> dict:
        return {r.port: r for r in self.station.results}


@pytest.fixture
def store(tmp_path):
    records = RecordStore(tmp_path / "records.sqlite")
    yield records
    records.close()


@pytest.fixture
async def line(rt1020, recipe, nursery, store):
    """start(ports, faults_by_port, ...) plugs a board into each port and starts a station on the hub.

    `port_faults` are tied to hub ports (a flaky port); `recipe` replaces the default one.
    """
    hubs = []

    async def start(
        ports: int = 8,
        faults: dict[str, tuple[str, ...]] | None = None,
        configured=True,
        port_faults: dict[str, list[str]] | None = None,
        recipe_override=None,
        plug=True,
        timing: TimingModel | None = None,
        hub_options: dict | None = None,
        station_options: dict | None = None,
    ):
        hub = SimHub(ports, seed=3, port_faults=port_faults, **(hub_options or {}))
        hubs.append(hub)
        factory = BoardFactory(rt1020, timing or TimingModel(time_scale=0), seed=11)
        if plug:
            for path in hub.ports:
                spec = factory()
                spec.faults = (faults or {}).get(path, ())
                hub.plug(path, spec)
        labels = {p: f"L{i}" for i, p in enumerate(hub.ports)} if configured else {}
        station = Station(
            rt1020, recipe_override or recipe, labels, records=store, power=SimPortPower(hub), **(station_options or {})
        )
        await nursery.start(station.run, SimHubSource(hub).run)
        return Line(hub, station)

    yield start
    for hub in hubs:
        hub.close()
        assert not hub.errors
