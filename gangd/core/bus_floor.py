"""The bus's floor: how soon N boards plugged at once can all be done, on a given topology.

Three lower bounds, the floor being the largest (never measured, computed):

- parallel: one board alone, plug to done: its plug enumeration, the ROM-stage work (the
  flashloader's transfer and jump), its boot, its flashloader's enumeration, then its work. Every
  board could meet this if the bus enumerated them all at once: the old benchmark floor.
- enumeration, per host controller: Linux enumerates one device at a time per controller
  (`address0_s` each, gangd/core/bus.py), and every board of it must enumerate before its work can
  start, twice for a ROM that jumps to its flashloader (plug, then the flashloader). So the last
  of `n` boards starts its work no earlier than `2 n` enumerations after the plug, nor than `n`
  enumerations plus its own ROM stage, boot and second enumeration. Reboots after the reset are
  not counted: a scheduler can put them after the last flashloader's enumeration.
- bandwidth, per root port: at most `budget` flashloader-stage boards at once (docs/FLASHLOADER.md,
  "USB"), each holding its slot for its work at least, so `ceil(n / budget)` waves of work after
  the first flashloader can appear.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from gangd.core.bus import ADDRESS0_S, DEFAULT_BUDGET, HostControllers, root_port


@dataclass(frozen=True)
class BoardTimes:
    """One board's physical times, in seconds."""

    rom_s: float  # the ROM stage's work: the flashloader across USB and the jump (0 without one)
    boot_s: float  # between leaving the bus and asking to enumerate again (the board's own part)
    work_s: float  # the flashloader stage: configure, write, verify, reset acknowledged
    jumps: bool = True  # an SDP ROM that becomes the flashloader: a second enumeration per board


def batch_floor_s(
    board: BoardTimes,
    paths: Iterable[str],
    controllers: HostControllers | None = None,
    address0_s: float = ADDRESS0_S,
    budget: int | None = DEFAULT_BUDGET,
) -> dict[str, float]:
    """The floor of a batch of boards plugged at once into `paths`, each bound and the floor
    ("total"), seconds from the plug to the last board done."""
    controllers = controllers or HostControllers()
    paths = list(paths)
    s = address0_s
    to_work = s + (board.rom_s + board.boot_s + s if board.jumps else 0.0)  # plug to work, alone
    parallel = to_work + board.work_s
    per_controller = Counter(controllers.of(path) for path in paths)
    enumerations = 2 if board.jumps else 1
    enumeration = max(
        (max(enumerations * n * s, n * s + to_work - s) + board.work_s for n in per_controller.values()),
        default=0.0,
    )
    bandwidth = 0.0
    if board.jumps and budget is not None:  # only a flashloader reached by a jump is admitted per root port
        per_root = Counter(root_port(path) for path in paths)
        bandwidth = max((to_work + -(-n // budget) * board.work_s for n in per_root.values()), default=0.0)
    floor = {"parallel": parallel, "enumeration": enumeration, "bandwidth": bandwidth}
    floor["total"] = max(floor.values())
    return floor


def boards_per_hour(boards: int, batch_s: float) -> float:
    return boards / batch_s * 3600 if batch_s > 0 else 0.0


def enumerations_per_board(jumps: bool) -> int:
    """Enumerations one board costs its controller in a station's steady flow: plugged, then its
    flashloader (a ROM that jumps), then its reboot after the reset."""
    return 3 if jumps else 2


def advice(
    paths: Iterable[str],
    controllers: HostControllers,
    jumps: bool,
    address0_s: float = ADDRESS0_S,
    board: BoardTimes | None = None,
    budget: int | None = DEFAULT_BUDGET,
) -> list[str]:
    """What the topology allows, in lines for `gangd check-config` and `gangd scan`: the host
    controllers and root ports the ports sit on, the most boards per hour the controllers'
    enumeration lets through (each enumerates one device at a time, `address0_s` each), and with
    the recipe's `board` times, the floor of a batch of one board per port plugged at once
    (`batch_floor_s`) in boards per hour. A second controller (a USB card) adds its own queue; a
    second hub on the same controller does not."""
    paths = list(paths)
    layout = controllers.layout(paths)
    if not layout:
        return []
    per_controller = 3600 / (enumerations_per_board(jumps) * address0_s)
    roots = sum(len(r) for r in layout.values())
    lines = [
        f"{len(layout)} USB host controller{'s' if len(layout) > 1 else ''}, {roots} root port{'s' if roots > 1 else ''}"
    ]
    for controller, root_ports in layout.items():
        shown = ", ".join(f"{root} ({n} ports)" for root, n in root_ports.items())
        lines.append(f"controller {controller}: {shown}")
    lines.append(
        f"enumeration allows at most {per_controller * len(layout):,.0f} boards/h here "
        f"({per_controller:,.0f} per controller: {enumerations_per_board(jumps)} enumerations of "
        f"{address0_s * 1000:.1f} ms per board, one device at a time per controller); another USB host "
        "controller adds as much, another hub on the same controller adds nothing"
    )
    if board is not None:
        floor = batch_floor_s(board, paths, controllers, address0_s, budget)
        bound = max(("enumeration", "bandwidth"), key=lambda name: floor[name])
        bound = bound if floor[bound] > floor["parallel"] else "one board's own time"
        lines.append(
            f"floor for this recipe: {len(paths)} boards plugged at once done in {floor['total']:.2f} s, "
            f"{boards_per_hour(len(paths), floor['total']):,.0f} boards/h (bound by {bound}; "
            f"one board alone {floor['parallel']:.2f} s)"
        )
    return lines
