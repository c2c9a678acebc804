"""The physical floor of a recipe: what the timing model says its USB transfers, flash erases and
programs, and re-enumerations cost, computed from the model command by command (never measured).

The command list is the one gangd's built-in flow sends; the costs are the simulator's rules:
every report in either direction is one report interval, a NOR page programmed per packet, an erase
split into 64 KiB blocks and 4 KiB sectors, a fixed re-enumeration after the jump and after the reset.
"""

from __future__ import annotations

from ..recipe import Recipe
from ..sim.links import MBOOT_HID_PACKET_SIZE, SDP_REPORT_DATA
from ..sim.timing import TimingModel


def floor_s(recipe: Recipe, model: TimingModel, packet_size: int = MBOOT_HID_PACKET_SIZE) -> dict[str, float]:
    ri = model.report_interval_s
    parts: dict[str, float] = {}
    # ROM: write-file = command + data reports + HAB + status; jump = command + HAB.
    parts["load-flashloader"] = (model.reports(len(recipe.flashloader), SDP_REPORT_DATA) + 3) * ri + 2 * ri
    parts["re-enumeration"] = model.reenumeration_s
    # Flashloader: identify (get-property), fill-memory per option word, configure-memory.
    parts["configure"] = (2 + 2 * len(recipe.option_words) + 2) * ri
    erase = write = verify = 0.0
    for n, image in enumerate(recipe.images):
        erase += model.erase_region_s(image.address, image.erase_length)
        if n == 0:
            write += 2 * ri  # spsdk asks MaxPacketSize once, before its first data phase
        write += model.write_memory_s(image.address, len(image.data), packet_size, to_flash=True)
        if recipe.verify:
            verify += model.read_memory_s(len(image.data), packet_size)
    parts["erase"], parts["write"], parts["verify"] = erase, write, verify
    if recipe.final_action == "reset":
        parts["reset"] = 2 * ri + model.reenumeration_s
    parts["total"] = sum(parts.values())
    return parts
