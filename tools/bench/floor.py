"""The physical floor of a recipe: what the timing model says its USB transfers, flash erases and
programs, and re-enumerations cost, computed from the model step by step (never measured).

The steps are the recipe's plan (`plan.py`), the same gangd runs; the costs are the simulator's
rules: every report in either direction is one report interval, NOR pages programmed as the
flashloader's page buffer fills, an erase split into 64 KiB blocks and 4 KiB sectors, a fixed
re-enumeration after the jump and after the reset.
"""

from __future__ import annotations

from gangd.config.recipe import Recipe
from gangd.engine import plan as p
from gangd.sim.links import MBOOT_HID_PACKET_SIZE, SDP_REPORT_DATA
from gangd.sim.timing import TimingModel


def floor_s(recipe: Recipe, model: TimingModel, packet_size: int = MBOOT_HID_PACKET_SIZE) -> dict[str, float]:
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
            case p.Identify():  # one get-property round trip
                add("configure", 2 * ri)
            case p.ConfigureMemory():  # fill-memory per option word, configure-memory
                add("configure", (2 * len(step.option_words) + 2) * ri)
            case p.Erase():
                add("erase", model.erase_region_s(step.address, step.length))
            case p.Write():
                if not asked_packet_size:  # spsdk asks MaxPacketSize once, before its first data phase
                    add("write", 2 * ri)
                    asked_packet_size = True
                add("write", model.write_memory_s(step.image.address, len(step.image.data), packet_size, to_flash=True))
            case p.Verify():
                add("verify", model.read_memory_s(len(step.image.data), packet_size))
            case p.Fuses():  # read every word; burning depends on the board
                add("fuses", 2 * ri * len(step.fuses.words))
            case p.Reset():
                add("reset", 2 * ri)
    parts["total"] = sum(parts.values())
    return parts
