"""`python -m tools.bench.layers PROF`: a cProfile of `tools.bench.cost --profile DIR`, per layer.

Sums each function's own CPU time (tottime on each thread's CPU clock, all threads) by the layer its file belongs to (the table
below, first match). cProfile's per-call overhead inflates code that makes many small calls, so
read the shares as where the calls go, and the CPU per MiB from `tools.bench.cost` without
profiling as the cost. Built-in functions (os.read, poll, bytes joins) count in the layer of
their caller.
"""

from __future__ import annotations

import argparse
import collections
import pstats

# (layer, path fragment): the first fragment found in a function's file names its layer.
LAYERS = [
    ("transport: report syscalls (fd_device)", "gangd/io/transport/fd_device.py"),
    ("gangd framing (io/transport/__init__)", "gangd/io/transport/__init__.py"),
    ("gangd data phase (io/transport/stream)", "gangd/io/transport/stream.py"),
    ("logging (structlog, logging)", "structlog/"),
    ("logging (structlog, logging)", "/logging/"),
    ("spsdk packet loop and framing", "spsdk/"),
    ("gangd engine (board_ops, steps, plan, job)", "gangd/engine/"),
    ("gangd core/service (port, observers, metrics, records)", "gangd/core/"),
    ("gangd core/service (port, observers, metrics, records)", "gangd/service/"),
    ("gangd core/service (port, observers, metrics, records)", "prometheus_client/"),
    ("trio scheduler and thread hops", "trio/"),
    ("trio scheduler and thread hops", "outcome/"),
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


def layer_of(filename: str) -> str:
    for layer, fragment in LAYERS:
        if fragment in filename:
            return layer
    return "other"


def summarise(path: str) -> collections.Counter:
    stats = pstats.Stats(path)
    layers: collections.Counter = collections.Counter()
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in raw.items():
        if filename == "~":  # a built-in: its time goes to its callers' layers, by their share of calls
            calls = sum(c[0] for c in callers.values()) or 1
            for (caller_file, _l, _n), caller in callers.items():
                layers[layer_of(caller_file)] += tottime * caller[0] / calls
        else:
            layers[layer_of(filename)] += tottime
    return layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", help="pstats files written by tools.bench.cost --profile")
    args = parser.parse_args(argv)
    for path in args.profiles:
        layers = summarise(path)
        total = sum(layers.values())
        print(f"{path}: {total:.2f} s of profiled time")
        for layer, seconds in layers.most_common():
            print(f"  {seconds / total * 100:5.1f} %  {seconds:6.2f} s  {layer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
