"""Flash geometry, one place for the configuration, the plan and the steps: the memory ids gangd
programs, the erase sector and program page of its flash drivers, and ranges rounded to sectors.

Memory ids are the MCU bootloader's (blhost's configure-memory, spsdk's MemoryId): internal flash 0,
FlexSPI NOR 9; both are mapped into the address space, so their erase, write and read commands take
memory id 0, as in the user's `flash-erase-region 0x60000000 45056 0`. The FlexSPI NOR driver erases
4 KiB sectors and programs 256-byte pages (docs/FLASHLOADER.md; NXP's flexspi_nor_memory.c).
"""

from __future__ import annotations

INTERNAL_FLASH = 0
FLEXSPI_NOR = 9
MAPPED_MEMORY_IDS = (INTERNAL_FLASH, FLEXSPI_NOR)
SECTOR_SIZE = 4096
PAGE_SIZE = 256  # the FlexSPI NOR driver's program unit; a write must start on a page boundary


def round_up(length: int, unit: int = SECTOR_SIZE) -> int:
    return -(-length // unit) * unit


def sector_span(address: int, size: int) -> tuple[int, int]:
    """(start, length) of the whole sectors that `size` bytes at `address` touch."""
    start = address // SECTOR_SIZE * SECTOR_SIZE
    return start, round_up(address + size) - start


def page_runs(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the runs of pages of `data` holding something other than 0xFF, each run
    starting on a page boundary (offsets relative to `data`, which starts on one)."""
    runs: list[tuple[int, int]] = []
    at = 0
    for blank in _blank_pages(data):
        if blank > at:
            runs.append((at, blank - at))
        at = blank + PAGE_SIZE
    if at < len(data):
        runs.append((at, len(data) - at))
    return runs


_BLANK_PAGE = b"\xff" * PAGE_SIZE


def _blank_pages(data: bytes) -> list[int]:
    """Offsets of the pages that are all 0xFF (a short last page too), found with bytes.find over
    the image rather than page by page: a dense 1 MiB image is one C-level scan, not 4,096 Python
    iterations (a sixth of gangd's CPU per MiB, docs/PERFORMANCE.md)."""
    found: list[int] = []
    whole = len(data) - len(data) % PAGE_SIZE
    at = 0
    while True:
        hit = data.find(_BLANK_PAGE, at, whole)
        if hit < 0:
            break
        offset = round_up(hit, PAGE_SIZE)  # the first page boundary at or after the hit
        if offset < whole and data[offset : offset + PAGE_SIZE] == _BLANK_PAGE:
            found.append(offset)
            at = offset + PAGE_SIZE
        else:
            at = offset + 1
    tail = data[whole:]
    if tail and tail.count(0xFF) == len(tail):
        found.append(whole)
    return found
