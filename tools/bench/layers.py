"""`python -m tools.bench.layers RAW`: a py-spy profile of `tools.bench.cost`, summed per layer.

RAW is py-spy's collapsed-stack output (`py-spy record --subprocesses -f raw -o RAW -- python -m
tools.bench.cost ...`). Each sample is put in the layer of the innermost frame that names one
(the table below, first match from the leaf upwards); samples taken while a process was starting
(imports, loading spsdk's device database) are counted apart, so the figures are the run itself.
py-spy is used rather than cProfile because it samples every thread of both processes (gangd's
trio thread and its worker threads, the simulator's per-port threads) without slowing the
per-packet calls it is measuring.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_FILE = re.compile(r"\(([^():]+)(?::\d+)?\)$")

# (layer, path fragment): the first fragment found in a frame's file, leaf upwards, names its layer.
LAYERS = [
    ("transport syscalls (fd_device read/write/poll)", "gangd/io/transport/fd_device.py"),
    ("gangd framing (io/transport/__init__)", "gangd/io/transport/__init__.py"),
    ("gangd data phase (io/transport/stream)", "gangd/io/transport/stream.py"),
    ("logging (structlog, logging)", "structlog/"),
    ("logging (structlog, logging)", "logging/"),
    ("spsdk packet loop and framing", "spsdk/"),
    ("gangd engine (board_ops, steps, plan, job)", "gangd/engine/"),
    ("gangd core/service (observers, metrics, records)", "gangd/core/"),
    ("gangd core/service (observers, metrics, records)", "gangd/service/"),
    ("gangd core/service (observers, metrics, records)", "prometheus_client/"),
    ("trio scheduler and thread hops", "trio/"),
    ("trio scheduler and thread hops", "threading.py"),
    ("sim links: report syscalls (links.py)", "gangd/sim/links.py"),
    ("sim flashloader (flashloader.py)", "gangd/sim/flashloader.py"),
    ("sim flash model (flexspi_nor, nor_flash, memory)", "gangd/sim/flexspi_nor.py"),
    ("sim flash model (flexspi_nor, nor_flash, memory)", "gangd/sim/nor_flash.py"),
    ("sim flash model (flexspi_nor, nor_flash, memory)", "gangd/sim/memory.py"),
    ("sim clock (timing.py)", "gangd/sim/timing.py"),
    ("sim hub and board (hub, board)", "gangd/sim/"),
    ("bench driver", "tools/bench/"),
]
STARTUP = ("importlib", "load_family", "make_recipe", "_run_module_as_main (<frozen runpy>:198);_run_code")


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = _FILE.search(frame)
        if match is None:
            continue
        for layer, fragment in LAYERS:
            if fragment in match.group(1):
                return layer
    return "other (native, no Python frame)"


def summarise(path: str) -> dict[str, collections.Counter]:
    per_process: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        process = "simulator" if "simproc" in processes[-1] else "gangd"
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        startup = any(s in frame for frame in frames for s in STARTUP[:3]) or (
            len(frames) > 2 and "<module>" in frames[2] and "tools/bench/simproc.py" not in frames[2]
        )
        per_process[process]["(startup, imports)" if startup else layer_of(frames)] += int(count)
    return per_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="py-spy record -f raw output")
    args = parser.parse_args(argv)
    for process, layers in sorted(summarise(args.raw).items()):
        run = sum(n for layer, n in layers.items() if layer != "(startup, imports)")
        print(f"{process}: {run} samples in the run ({layers['(startup, imports)']} more while starting)")
        for layer, n in layers.most_common():
            if layer != "(startup, imports)":
                print(f"  {n / run * 100:5.1f} %  {layer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
