"""The collector of a long-running gangd process (gangd/service/collector.py): the youngest
generation collected less often, cycles still collected on their own; the daemon settles it before
its station starts."""

from __future__ import annotations

import gc
import os
import signal
import weakref

import trio

from gangd.service import collector
from gangd.service.daemon import serve
from gangd.sim import SimHub
from gangd.sim.source import SimHubSource
from gangd.station.station import Station


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_collects_the_young_less_often_and_still_collects_cycles():
    collector.settle()
    assert gc.get_threshold()[0] == collector.GEN0_THRESHOLD
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: reference counts alone never free it
    gone = weakref.ref(a)
    del a, b
    kept = [[] for _ in range(collector.GEN0_THRESHOLD + 100)]  # young container allocations
    assert gone() is None, "the collector no longer ran on its own"
    assert len(kept) > collector.GEN0_THRESHOLD


async def test_the_daemon_settles_its_collector_before_its_station_starts(rt1020, recipe, monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(collector, "settle", lambda: order.append("settle"))
    with SimHub(1) as hub:
        source = SimHubSource(hub).run
        started = trio.Event()

        async def watched_source(*args, **kwargs):
            order.append("station")
            started.set()
            return await source(*args, **kwargs)

        station = Station(rt1020, recipe, {"1-1.1": "A1"})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, station, watched_source, 1.0)
            await started.wait()
            os.kill(os.getpid(), signal.SIGTERM)
    assert order == ["settle", "station"]
