"""The benchmark's bus rows: batches of N boards on K host controllers and R root ports against the
floor with enumeration serialised per controller (gangd/core/bus_floor.py), the old "parallel
enumeration" floor beside it, boards per hour for both; and the calibration row that says how
fast this machine was while they ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from gangd.config.recipe import Recipe
from gangd.core.bus_floor import boards_per_hour
from gangd.sim.timing import TimingModel
from tools.bench.floor import bus_floor_s

# The rows: N=64 on one controller and 8 root ports, N=128 on two and 16.
DEFAULT_TOPOLOGIES = "8:1:1,32:1:4,64:1:8,128:2:16"
CALIBRATION_LOOP = 10_000_000


@dataclass(frozen=True)
class Topology:
    boards: int
    controllers: int
    root_ports: int

    def label(self) -> str:
        plural = "s" if self.controllers > 1 else ""
        return f"N={self.boards} on {self.controllers} controller{plural}, {self.root_ports} root ports"


def topologies(text: str) -> list[Topology]:
    """`N:K:R,...` (boards, controllers, root ports)."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            n, k, r = (int(v) for v in item.split(":"))
        except ValueError:
            raise SystemExit(f"--bus-rows {item!r}: expected N:K:R (boards:controllers:root ports)") from None
        out.append(Topology(n, k, r))
    return out


def calibration_s() -> float:
    """CPU seconds of a fixed pure-Python loop: quoted beside every figure, so that runs on a
    loaded or a faster machine can be read against each other."""
    started = time.process_time()
    total = 0
    for i in range(CALIBRATION_LOOP):
        total += i % 7
    return time.process_time() - started


def bus_phase(
    gangd_phase: Callable, recipe: Recipe, model: TimingModel, rows: list[Topology], repeats: int
) -> dict[str, dict]:
    """Each topology's batches (`repeats` of them, the median kept) and its floors."""
    figures: dict[str, dict] = {}
    for topo in rows:
        run = trio.run(
            gangd_phase, recipe, [topo.boards] * repeats, topo.boards, 0.0, False, topo.root_ports,
            1.0, (), 0, None, None, topo.controllers,
        )  # fmt: skip
        walls = sorted(batch["wall_s"] for batch in run["runs"])
        median = walls[len(walls) // 2]
        floor = bus_floor_s(recipe, model, topo.boards, topo.root_ports, topo.controllers)
        figures[topo.label()] = {
            "topology": vars(topo),
            "walls_s": walls,
            "wall_s": median,
            "ok": min(batch["ok"] for batch in run["runs"]),
            "failures": [reason for batch in run["runs"] for reason in batch["failures"]],
            "floor": floor,
            "boards_per_hour": boards_per_hour(topo.boards, median),
            "floor_boards_per_hour": boards_per_hour(topo.boards, floor["total"]),
            "parallel_boards_per_hour": boards_per_hour(topo.boards, floor["parallel"]),
        }
    return figures


def bus_rows(figures: dict[str, dict], calibration: float) -> list[tuple[str, str, str, str]]:
    targets = {(64, 1, 8): ">= 0.90", (128, 2, 16): ">= 0.85"}
    rows = []
    for label, f in figures.items():
        topo, floor = f["topology"], f["floor"]
        target = targets.get((topo["boards"], topo["controllers"], topo["root_ports"]), "")
        rows.append(
            (
                f"{label} vs serialised floor",
                f"{floor['total'] / f['wall_s']:.3f}",
                f"{f['boards_per_hour']:,.0f} boards/h, {f['ok']}/{topo['boards']} ok, batch {f['wall_s']:.2f} s"
                f" (median of {len(f['walls_s'])}); floor {floor['total']:.2f} s = {f['floor_boards_per_hour']:,.0f}"
                f" boards/h; parallel floor {floor['parallel']:.2f} s = {f['parallel_boards_per_hour']:,.0f} boards/h"
                f" (ratio {floor['parallel'] / f['wall_s']:.3f}); calibration {calibration:.3f} s",
                target,
            )
        )
    return rows
