"""Threads or a worker process per board? Measures what each costs, for the daemon-core decision.

    .venv/bin/python bench/isolation.py

Prints: the round-trip cost of handing one blocking call to a worker thread (trio.to_thread) and
to a worker process (multiprocessing pipe, data pickled both ways), the memory one more worker
process costs (it must import spsdk), and a whole simulated line run on threads at real time.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time

import trio

CALLS = 2000
PAYLOAD = bytes(1020)  # one HID report's worth of data per call


def noop(data: bytes) -> int:
    return len(data)


async def thread_round_trips() -> float:
    limiter = trio.CapacityLimiter(1)
    started = time.perf_counter()
    for _ in range(CALLS):
        await trio.to_thread.run_sync(noop, PAYLOAD, limiter=limiter)
    return (time.perf_counter() - started) / CALLS


def _worker(conn) -> None:
    while (data := conn.recv()) is not None:
        conn.send(noop(data))


def process_round_trips() -> float:
    parent, child = multiprocessing.Pipe()
    worker = multiprocessing.get_context("spawn").Process(target=_worker, args=(child,))
    worker.start()
    parent.send(PAYLOAD)
    parent.recv()
    started = time.perf_counter()
    for _ in range(CALLS):
        parent.send(PAYLOAD)
        parent.recv()
    elapsed = (time.perf_counter() - started) / CALLS
    parent.send(None)
    worker.join()
    return elapsed


def worker_process_rss_mb() -> float:
    code = (
        "import resource, spsdk.mboot.mcuboot, spsdk.sdp.sdp; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out) / 1024


def line_on_threads(boards: int) -> tuple[float, float, float]:
    """(wall s, daemon CPU s, model s per board) for `boards` boards at time scale 1."""
    from gangd.config.family import load_family
    from gangd.config.recipe import builtin_rt1020
    from gangd.sim import BoardFactory, SimHub, TimingModel
    from gangd.sim.images import build_flashloader_image
    from gangd.sim.source import SimHubSource
    from gangd.station.station import Station

    family = load_family("mimxrt1020")
    flashloader, jump = build_flashloader_image()
    station = Station(family, builtin_rt1020(os.urandom(45056), flashloader, jump))
    with SimHub(boards) as hub:
        factory = BoardFactory(family, TimingModel(time_scale=1))
        for path in hub.ports:
            hub.plug(path, factory())
        cpu0, wall0 = time.process_time(), time.monotonic()

        async def main():
            async with trio.open_nursery() as nursery:
                await nursery.start(station.run, SimHubSource(hub).run)
                while len(station.results) < boards:
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        trio.run(main)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        charged = statistics.mean(hub.board(p).clock.charged_s for p in hub.ports)
    assert all(r.result == "success" for r in station.results), station.results
    return wall, cpu, charged


if __name__ == "__main__":
    from gangd.service import logs

    logs.configure("warning")
    thread_us = trio.run(thread_round_trips) * 1e6
    process_us = process_round_trips() * 1e6
    print(f"worker thread round trip:   {thread_us:7.1f} µs per call")
    print(f"worker process round trip:  {process_us:7.1f} µs per call (1020-byte payload pickled)")
    print(f"one worker process with spsdk imported: {worker_process_rss_mb():.0f} MB resident")
    for n in (1, 8, 32):
        wall, cpu, charged = line_on_threads(n)
        print(
            f"threads, {n:2d} boards at time scale 1: {wall:5.2f} s wall for the batch, "
            f"{charged:4.2f} s modelled per board (sim CPU included: {cpu:5.2f} s CPU)"
        )
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB max resident")
