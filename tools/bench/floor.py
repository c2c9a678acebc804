"""Two floors of a recipe, computed from the timing model (never measured):

- `physics_s`: what the hardware itself needs for one board, blank or holding an old image: the
  mandatory re-enumeration after the flashloader's jump, the flashloader and the image's non-0xFF
  pages across USB at the link rate, those pages programmed, the sectors that hold something
  erased (none on a blank board), one read-back of the image, the reset acknowledged. Nothing for
  a blank check or for watching the reboot: no physical need forces either.
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
from gangd.core.bus_floor import BoardTimes, batch_floor_s
from gangd.engine import plan as p
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


def physics_s(
    recipe: Recipe, model: TimingModel, blank: bool = True, packet_size: int = MBOOT_HID_PACKET_SIZE
) -> dict[str, float]:
    """What the hardware needs: the physical floor a provisioning run cannot go below."""
    ri = model.report_interval_s
    parts: dict[str, float] = {}
    if recipe.family.rom_protocol == "sdp":  # the flashloader across USB, its jump, re-enumeration
        parts["load-flashloader"] = (model.reports(len(recipe.flashloader), SDP_REPORT_DATA) + 5) * ri
        parts["re-enumeration"] = model.reenumeration_s
    # get-property (who is this board), the option words and configure-memory, MaxPacketSize
    parts["configure"] = (2 + 2 * len(recipe.option_words) + 2 + 2) * ri
    for image in recipe.images:
        if not blank:  # every sector of the range holds the old image
            parts["erase"] = parts.get("erase", 0.0) + model.erase_region_s(image.address, image.erase_length)
        for offset, length in p.page_runs(image):
            write = model.write_memory_s(image.address + offset, length, packet_size, to_flash=True)
            parts["write"] = parts.get("write", 0.0) + write
        if recipe.verify:
            parts["verify"] = parts.get("verify", 0.0) + model.read_memory_s(len(image.data), packet_size)
    parts["reset"] = 2 * ri
    parts["total"] = sum(parts.values())
    return parts


def floor_s(recipe: Recipe, model: TimingModel, packet_size: int = MBOOT_HID_PACKET_SIZE) -> dict[str, float]:
    """The naive sequence's cost (the benchmark's old floor), kept as a comparison column."""
    return sequence_s(naive(recipe), model, True, packet_size)


def board_times(recipe: Recipe, model: TimingModel, blank: bool = True) -> BoardTimes:
    """The physics floor's parts as the bus floor's per-board times (gangd/core/bus_floor.py)."""
    parts = physics_s(recipe, model, blank)
    rom = parts.get("load-flashloader", 0.0)
    work = parts["total"] - rom - parts.get("re-enumeration", 0.0)
    return BoardTimes(rom_s=rom, boot_s=model.device_boot_s(), work_s=work, jumps="re-enumeration" in parts)


def bus_floor_s(
    recipe: Recipe, model: TimingModel, boards: int, root_ports: int, controllers: int, blank: bool = True
) -> dict[str, float]:
    """N boards plugged at once on the simulator's topology (`default_port_paths`): the floor with
    enumeration serialised per controller and bandwidth per root port, each bound beside it, and
    "parallel", the old floor's picture of a bus that enumerates every board at once."""
    paths = default_port_paths(boards, root_ports, controllers)
    return batch_floor_s(board_times(recipe, model, blank), paths, address0_s=model.address0_s())
