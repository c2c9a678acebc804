"""Remake tests/data/traces/: one trace per simulated fault kind, and a good board's.

    python -m tools.make_traces [--out tests/data/traces]

Each case runs one simulated board (its fault, `CASES`) through gangd's real station with the
small recipe in tests/data/traces/recipe.toml (its flashloader.bin and image.bin are written
first) and `[trace] keep = "all"`, and keeps the job's trace as `<case>.pcapng`
(`good-hash.pcapng` is the good board with `payload = "hash"`). The replay tests
(tests/trace/test_replay.py) run the same recipe against each trace replayed and expect the
recorded result and reason. `foreign-node` is left out: it exists only on emulated hidraw nodes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import trio

from gangd.config.family import load_family
from gangd.config.loader import load_config
from gangd.config.recipe import Recipe, TraceSettings
from gangd.core.results import JobResult
from gangd.service import logs
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.board import BoardSpec, SimBoard
from gangd.sim.images import build_flashloader_image
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.station.station import Station

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "traces"
PORT = "1-1.1"
# The image: a pattern a test can grep for (a payload="hash" trace must not hold it).
IMAGE_PATTERN = b"GANGD-TRACE-IMG:"
IMAGE = IMAGE_PATTERN * 512  # 8 KiB: two sectors, a small trace
RECIPE = OUT / "recipe.toml"

CASES: dict[str, tuple[str, ...]] = {
    "good": (),
    "marginal": ("marginal-read:max-mhz=100",),
    "status": ("status:cmd=write-memory,code=20106,nth=1",),
    "no-response": ("no-response:cmd=write-memory,nth=1",),
    "hang": ("hang:cmd=write-memory",),
    "disconnect": ("disconnect:cmd=write-memory,after=1024",),
    "malformed": ("malformed:cmd=read-memory,shape=halfway,nth=1",),
    "corrupt-readback": ("corrupt-readback:nth=1",),
    "no-reenumerate": ("no-reenumerate",),
    "slow-flash": ("slow-flash:factor=3",),
    "otp": ("otp:index=24,value=0x1234abcd",),
    "write-protect": ("write-protect:persist=power",),
}


def write_recipe_files(out: Path) -> None:
    """The flashloader and image recipe.toml names (deterministic: remade byte for byte)."""
    flashloader, jump = build_flashloader_image(load_address=0x2000_0000, code_size=0x800)
    assert jump == 0x2000_0400  # recipe.toml's jump_address
    (out / "flashloader.bin").write_bytes(flashloader)
    (out / "image.bin").write_bytes(IMAGE)


def trace_recipe(trace: TraceSettings | None = None) -> Recipe:
    """The recipe the traces were recorded with, and are replayed with (recipe.toml)."""
    return replace(load_config(RECIPE).recipe, trace=trace)


def board_spec(faults: tuple[str, ...]) -> BoardSpec:
    factory = BoardFactory(load_family("mimxrt1020"), TimingModel(time_scale=0), seed=24, faults=faults)
    return factory()


async def run_one(recipe: Recipe, board: SimBoard | BoardSpec, timeout_s: float = 60) -> JobResult:
    """One board on a one-port simulated hub under gangd's station; its job's result."""
    results: list[JobResult] = []
    done = trio.Event()
    with SimHub([PORT], seed=24) as hub:
        station = Station(recipe.family, recipe, {PORT: "T1"}, power=SimPortPower(hub))

        def finished(result: JobResult) -> None:
            results.append(result)
            done.set()

        station.listeners.append(finished)
        async with trio.open_nursery() as nursery:
            await nursery.start(station.run, SimHubSource(hub).run)
            await trio.to_thread.run_sync(hub.plug, PORT, board)
            with trio.fail_after(timeout_s):
                await done.wait()
            nursery.cancel_scope.cancel()
        if hub.errors:
            raise RuntimeError(f"the simulator crashed: {hub.errors!r}")
    return results[0]


async def record(case: str, faults: tuple[str, ...], out: Path, payload: str = "full") -> Path:
    with tempfile.TemporaryDirectory(prefix="gangd-traces-") as tmp:
        recipe = trace_recipe(TraceSettings(tmp, keep="all", payload=payload))
        result = await run_one(recipe, board_spec(faults))
        files = [name for name in os.listdir(tmp) if name.endswith(".pcapng")]
        if len(files) != 1:
            raise RuntimeError(f"{case}: expected one trace, found {files}")
        target = out / f"{case}.pcapng"
        shutil.copyfile(os.path.join(tmp, files[0]), target)
    print(f"{target.name}: {result.result} {result.step or ''} {result.reason or ''}".rstrip())
    return target


async def main_async(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_recipe_files(OUT)
    for case, faults in CASES.items():
        await record(case, faults, out)
    await record("good-hash", (), out, payload="hash")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_traces", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logs.configure("warning")
    trio.run(main_async, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
