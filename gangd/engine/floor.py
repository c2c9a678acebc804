"""One board's physical floor, computed from the physics of the bus and the flash
(gangd/core/physics.py), never measured: the mandatory re-enumeration after the flashloader's jump,
the flashloader and the image's non-0xFF pages across USB at the link rate, those pages programmed,
the sectors that hold something erased (none on a blank board), one read-back of the image, the
reset acknowledged. Nothing for a blank check or for watching the reboot: no physical need forces
either. `board_times` gives its parts to the bus floor (gangd/core/bus_floor.py), which `gangd
check-config`, `gangd scan` and the benchmark (tools/bench/floor.py) use.
"""

from __future__ import annotations

from gangd.config.recipe import Recipe
from gangd.core.bus_floor import BoardTimes
from gangd.core.physics import MBOOT_PACKET_SIZE, SDP_DATA_REPORT, Physics
from gangd.engine import plan as p


def physics_s(
    recipe: Recipe, model: Physics, blank: bool = True, packet_size: int = MBOOT_PACKET_SIZE
) -> dict[str, float]:
    """What the hardware needs: the physical floor a provisioning run cannot go below."""
    ri = model.report_interval_s
    parts: dict[str, float] = {}
    if recipe.family.rom_protocol == "sdp":  # the flashloader across USB, its jump, re-enumeration
        parts["load-flashloader"] = (model.reports(len(recipe.flashloader), SDP_DATA_REPORT) + 5) * ri
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


def board_times(recipe: Recipe, model: Physics, blank: bool = True) -> BoardTimes:
    """The physics floor's parts as the bus floor's per-board times (gangd/core/bus_floor.py)."""
    parts = physics_s(recipe, model, blank)
    rom = parts.get("load-flashloader", 0.0)
    work = parts["total"] - rom - parts.get("re-enumeration", 0.0)
    return BoardTimes(rom_s=rom, boot_s=model.device_boot_s(), work_s=work, jumps="re-enumeration" in parts)
