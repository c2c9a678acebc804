"""`python -m tools.bench.cost`: CPU per MiB of image programmed, gangd's and the simulator's.

One batch of boards plugged at once, each programmed with an image of `--image-size` bytes; the
simulator runs at `--time-scale` (0: every modelled cost is free, so only CPU counts and the wall
time is what the two processes need). Prints one line per process:

    gangd      cpu_s  ms per MiB of image
    simulator  cpu_s  ms per MiB of image

A MiB of image programmed on a blank board is its blank check, its write and its read-back; on a
board holding an old image, also its erase. docs/PERFORMANCE.md keeps the commands and figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import trio

from gangd.service import logs
from gangd.sim.nor_flash import HYPERFLASH_PART
from tools.bench import profiling
from tools.bench.run import gangd_phase, make_recipe

MIB = 1024 * 1024
# spsdk's hyper_flash preset (data/common/memcfg): the option word of the RT1050 EVKB's HyperFlash.
HYPERFLASH_OPTION = 0xC023_3007


def measure(
    image_size: int,
    boards: int,
    root_ports: int,
    time_scale: float,
    old_image: bool = False,
    profile: str = "",
    hyperflash: bool = False,
) -> dict:
    recipe = make_recipe(image_size)
    sim_args: tuple[str, ...] = ()
    if hyperflash:  # 64 MiB: room for images past the serial NOR parts' 8-16 MiB
        recipe = dataclasses.replace(recipe, option_words=(HYPERFLASH_OPTION,))
        sim_args = ("--flash-part", HYPERFLASH_PART)
    if profile:
        Path(profile).mkdir(parents=True, exist_ok=True)
        sim_args += ("--profile", str(Path(profile) / "simulator.prof"))
        profiling.start()
    run = trio.run(gangd_phase, recipe, [boards], boards, 0.0, old_image, root_ports, time_scale, sim_args)
    if profile:
        profiling.dump(str(Path(profile) / "gangd.prof"))
    batch = run["batches"][boards]
    mib = boards * image_size / MIB
    return {
        "image_size": image_size,
        "boards": boards,
        "root_ports": root_ports,
        "time_scale": time_scale,
        "ok": batch["ok"],
        "flash_ok": batch["flash_ok"],
        "wall_s": batch["wall_s"],
        "gangd_cpu_s": batch["cpu_s"],
        "sim_cpu_s": batch["sim_cpu_s"],
        "gangd_ms_per_mib": batch["cpu_s"] / mib * 1000,
        "sim_ms_per_mib": batch["sim_cpu_s"] / mib * 1000,
        "rss_mb": batch["rss_mb"],
        "rss_peak_mb": run["rss_peak_mb"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=MIB, help="bytes of image per board")
    parser.add_argument("--boards", type=int, default=8, help="boards plugged at once, one per port")
    parser.add_argument("--root-ports", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.0)
    parser.add_argument("--old-image", action="store_true", help="boards arrive holding an old image")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument(
        "--profile", metavar="DIR", help="cProfile both processes (every thread) into DIR/gangd.prof, simulator.prof"
    )
    parser.add_argument(
        "--hyperflash",
        action="store_true",
        help="the boards carry the RT1050 EVKB's 64 MiB HyperFlash (images past 16 MiB: the memory an image "
        "costs gangd per board)",
    )
    args = parser.parse_args(argv)
    logs.configure("warning")
    figures = measure(
        args.image_size, args.boards, args.root_ports, args.time_scale, args.old_image, args.profile, args.hyperflash
    )
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"{figures['boards']} boards x {figures['image_size']:,} bytes, {figures['root_ports']} root port(s),"
        f" time scale {figures['time_scale']:g}: {figures['ok']}/{figures['boards']} ok,"
        f" flash ok {figures['flash_ok']}, wall {figures['wall_s']:.2f} s"
    )
    print(f"gangd      {figures['gangd_cpu_s']:7.2f} s CPU  {figures['gangd_ms_per_mib']:7.1f} ms per MiB of image")
    print(f"simulator  {figures['sim_cpu_s']:7.2f} s CPU  {figures['sim_ms_per_mib']:7.1f} ms per MiB of image")
    print(f"gangd RSS  {figures['rss_mb']:.0f} MB (peak {figures['rss_peak_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
