"""Two floors of a recipe, computed from the timing model (never measured):

- `physics_s` (gangd/engine/floor.py, the product's: check-config and scan use it too): what the
  hardware itself needs for one board, blank or holding an old image.
- `sequence_s`: what the plan's own command sequence costs as the simulator charges it, step by
  step; with `naive` the user's sequence (erase everything, write everything, hold the port
  until the board is back after its reset), the column the benchmark keeps for comparison.

The costs are the simulator's rules: every report in either direction is one report interval, NOR
pages programmed as the flashloader's page buffer fills, an erase split into 64 KiB blocks and
4 KiB sectors, a fixed re-enumeration after the jump and after the reset.

`bus_floor_s`: a batch of N boards plugged at once on K host controllers and R root ports, with
Linux's enumeration one device at a time per controller and bandwidth per root port
(gangd/core/bus_floor.py has the bounds and their reasons).
"""

from __future__ import annotations

import dataclasses

from gangd.config.geometry import FLEXSPI_NOR
from gangd.config.recipe import Recipe
from gangd.core.bus_floor import batch_floor_s
from gangd.engine import plan as p
from gangd.engine.floor import board_times
from gangd.sim.hub import default_port_paths
from gangd.sim.links import MBOOT_HID_PACKET_SIZE, SDP_REPORT_DATA
from gangd.sim.timing import TimingModel


def naive(recipe: Recipe) -> Recipe:
    """The user's sequence: no blank check, every page written, the port held through the reboot."""
    return dataclasses.replace(recipe, blank_check=False, skip_blank_pages=False, wait_reboot=True)


def sequence_s(
    recipe: Recipe, model: TimingModel, blank: bool = True, packet_size: int = MBOOT_HID_PACKET_SIZE
) -> dict[str, float]:
    """The plan's commands as the simulator charges them, on a blank board or one whose image range
    holds an old image in every sector."""
    ri = model.report_interval_s
    parts: dict[str, float] = {}

    def add(part: str, seconds: float) -> None:
        parts[part] = parts.get(part, 0.0) + seconds

    asked_packet_size = False
    for step in p.plan(recipe):
        match step:
            case p.LoadFlashloader():  # write-file: command, data reports, HAB, status; jump: command, HAB
                add("load-flashloader", (model.reports(len(step.data), SDP_REPORT_DATA) + 3) * ri + 2 * ri)
            case p.WaitStage(required=True):
                add("re-enumeration", model.reenumeration_s)
            case p.WaitStage():
                add("reset", model.reenumeration_s)
            case p.Identify():  # one get-property round trip; for internal flash two more (its geometry)
                add("configure", (6 if step.internal_flash else 2) * ri)
            case p.ConfigureMemory():  # fill-memory per option word, configure-memory, get-property 25
                add("configure", (2 * len(step.option_words) + 2 + (2 if step.memory_id == FLEXSPI_NOR else 0)) * ri)
            case p.BlankCheck():
                add("blank-check", model.read_memory_s(step.length, packet_size))
            case p.Erase():
                if not (step.skip_blank and blank):
                    add("erase", model.erase_region_s(step.address, step.length))
            case p.Write():
                if not asked_packet_size:  # spsdk asks MaxPacketSize once, before its first data phase
                    add("write", 2 * ri)
                    asked_packet_size = True
                runs = p.page_runs(step.image) if step.skip_blank_pages else [(0, len(step.image.data))]
                for offset, length in runs:
                    add("write", model.write_memory_s(step.image.address + offset, length, packet_size, to_flash=True))
            case p.Verify():
                add("verify", model.read_memory_s(len(step.image.data), packet_size))
            case p.Fuses():  # read every word; burning depends on the board
                add("fuses", 2 * ri * len(step.fuses.words))
            case p.Reset():
                add("reset", 2 * ri)
    parts["total"] = sum(parts.values())
    return parts


def floor_s(recipe: Recipe, model: TimingModel, packet_size: int = MBOOT_HID_PACKET_SIZE) -> dict[str, float]:
    """The naive sequence's cost (the benchmark's old floor), kept as a comparison column."""
    return sequence_s(naive(recipe), model, True, packet_size)


def bus_floor_s(
    recipe: Recipe, model: TimingModel, boards: int, root_ports: int, controllers: int, blank: bool = True
) -> dict[str, float]:
    """N boards plugged at once on the simulator's topology (`default_port_paths`): the floor with
    enumeration serialised per controller and bandwidth per root port, each bound beside it, and
    "parallel", the old floor's picture of a bus that enumerates every board at once."""
    paths = default_port_paths(boards, root_ports, controllers)
    return batch_floor_s(board_times(recipe, model, blank), paths, address0_s=model.address0_s())
