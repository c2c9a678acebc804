"""Flash geometry, one place for the configuration, the plan and the steps: the memory ids gangd
programs, the erase sector and program page of each configured memory, and ranges rounded to them.

Memory ids are the MCU bootloader's (blhost's configure-memory, spsdk's MemoryId): internal flash 0,
FlexSPI NOR 9; both are mapped into the address space, so their erase, write and read commands take
memory id 0, as in the user's `flash-erase-region 0x60000000 45056 0`.

Where a geometry comes from, in order (/work/shared/DESIGN.md "Where a fact about a part comes
from"): what the board answers before the first erase (get-property FlashSectorSize/FlashPageSize
for internal flash, ExternalMemoryAttributes for FlexSPI NOR: engine/board_ops.py `geometry`), else
the family's facts (internal flash: config/family_facts/*.toml), else the FlexSPI NOR driver's
serial NOR defaults: 4 KiB sectors, 256-byte pages (docs/FLASHLOADER.md; NXP's flexspi_nor_memory.c).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gangd.config.family import FamilyInfo

INTERNAL_FLASH = 0
FLEXSPI_NOR = 9
MAPPED_MEMORY_IDS = (INTERNAL_FLASH, FLEXSPI_NOR)
SECTOR_SIZE = 4096  # serial NOR's 4 KiB sector: the FlexSPI NOR driver's erase unit on SFDP parts
PAGE_SIZE = 256  # the FlexSPI NOR driver's program unit; a write must start on a page boundary


@dataclass(frozen=True)
class Geometry:
    """The erase and program units of one configured memory, and where they came from."""

    sector_size: int  # erase unit: an erase is widened (FlexSPI NOR) or refused (internal flash) off it
    page_size: int  # program unit: a write must start on one
    # "board" (asked before erasing), "facts: FILE", or the driver default's name; not compared:
    # the same units from another source are the same geometry (Image.on keeps its page runs).
    source: str = field(compare=False)

    def span(self, address: int, length: int) -> tuple[int, int]:
        """(start, length) of the whole sectors that `length` bytes at `address` touch."""
        return sector_span(address, length, self.sector_size)

    def page_start(self, address: int) -> int:
        return address // self.page_size * self.page_size


SERIAL_NOR = Geometry(SECTOR_SIZE, PAGE_SIZE, "FlexSPI NOR driver default (serial NOR, SFDP)")


def planned_geometry(family: FamilyInfo, memory_id: int) -> Geometry:
    """The geometry the plan is made with, before any board answers: the internal flash's from the
    family's facts; a FlexSPI NOR's from the serial NOR defaults (the part on the board decides:
    a HyperFlash answers 256 KiB sectors and 512-byte pages once configured)."""
    facts = family.facts
    if memory_id == INTERNAL_FLASH and facts is not None and facts.internal_flash is not None:
        flash = facts.internal_flash
        return Geometry(flash.sector_size, flash.page_size, f"facts: {facts.file}")
    return SERIAL_NOR


def round_up(length: int, unit: int = SECTOR_SIZE) -> int:
    return -(-length // unit) * unit


def sector_span(address: int, size: int, sector: int = SECTOR_SIZE) -> tuple[int, int]:
    """(start, length) of the whole sectors that `size` bytes at `address` touch."""
    start = address // sector * sector
    return start, round_up(address + size, sector) - start


def page_runs(data: bytes, page: int = PAGE_SIZE) -> list[tuple[int, int]]:
    """(offset, length) of the runs of pages of `data` holding something other than 0xFF, each run
    starting on a page boundary (offsets relative to `data`, which starts on one)."""
    runs: list[tuple[int, int]] = []
    at = 0
    for blank in _blank_pages(data, page):
        if blank > at:
            runs.append((at, blank - at))
        at = blank + page
    if at < len(data):
        runs.append((at, len(data) - at))
    return runs


def _blank_pages(data: bytes, page: int) -> list[int]:
    """Offsets of the pages that are all 0xFF (a short last page too), found with bytes.find over
    the image rather than page by page: a dense 1 MiB image is one C-level scan, not 4,096 Python
    iterations (a sixth of gangd's CPU per MiB, docs/PERFORMANCE.md)."""
    found: list[int] = []
    blank_page = b"\xff" * page
    whole = len(data) - len(data) % page
    at = 0
    while True:
        hit = data.find(blank_page, at, whole)
        if hit < 0:
            break
        offset = round_up(hit, page)  # the first page boundary at or after the hit
        if offset < whole and data[offset : offset + page] == blank_page:
            found.append(offset)
            at = offset + page
        else:
            at = offset + 1
    tail = data[whole:]
    if tail and tail.count(0xFF) == len(tail):
        found.append(whole)
    return found
