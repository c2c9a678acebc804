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
