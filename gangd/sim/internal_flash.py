"""The on-chip flash of a part whose ROM is the MCU bootloader (LPC55Sxx, MCX N), as its ROM drives it.

Address range from spsdk's memory map (`internal-flash_ns`); page and erase sizes are not in spsdk's
database: they come from the family's facts (gangd/config/family_facts/*.toml), the same facts gangd
plans with: a gangd that erased by one sector size for every family (the RT1020's 4 KiB) fails
an MCX N board with 101, as the real one does. A family without facts gets 512-byte pages erased
by 4 KiB (our choice). The rules follow mcu-boot's internal flash memory
interface (`src/memory/src/flash_memory.c`) with the same features the FlexSPI path has on:

    rule                                                   status
    erase start or length not on the erase unit            101   kStatus_FLASH_AlignmentError
                                                                 (the flash driver's flash_check_range,
                                                                 called by its erase with the sector)
    a write that does not start on a page                  101   kStatus_FLASH_AlignmentError
                                                                 (flash_check_range, by its program)
    a page to program that is not erased                   10203 kStatusMemoryCumulativeWrite: a second
                                                                 program of an unerased area, not an
                                                                 alignment status
    (pages are buffered and the last one padded with 0xFF at the end of the command)

10206 kStatusMemoryAlignmentError is not returned on this path (nor on the FlexSPI NOR one): the
alignment refusals are the flash driver's 101. The erase unit is the FlashSectorSize the ROM
answers (32 KiB on LPC55S69, 8 KiB on MCX N/A): the sector flash_check_range is called with.
Inference, not checked against a real ROM: that the ROM checks cumulative writes (ECC flash cannot
be programmed twice without an erase, which the hardware itself refuses).
"""

from __future__ import annotations

from spsdk.mboot.error_codes import StatusCode

from gangd.config.facts import InternalFlashFacts
from gangd.config.family import FamilyInfo, MemoryRegion
from gangd.sim.memory import SparseMemory

ALIGNMENT = StatusCode.FLASH_ALIGNMENT_ERROR.tag  # 101
CUMULATIVE_WRITE = StatusCode.MEMORY_CUMULATIVE_WRITE.tag  # 10203


DEFAULT_GEOMETRY = InternalFlashFacts(sector_size=4096, page_size=512)  # our choice, for a family without facts


def geometry(family: FamilyInfo) -> InternalFlashFacts:
    """Reported as FlashSectorSize (the erase unit) and FlashPageSize (the program unit)."""
    flash = family.facts.internal_flash if family.facts is not None else None
    return flash if flash is not None else DEFAULT_GEOMETRY


class InternalFlash:
    def __init__(self, region: MemoryRegion, family: FamilyInfo) -> None:
        self.region = region
        self.geometry = geometry(family)
        self.cells = SparseMemory(0xFF)
        self._page_address: int | None = None
        self._page = bytearray()

    def erase(self, address: int, length: int) -> int:
        unit = self.geometry.sector_size
        if address % unit or length % unit:
            return ALIGNMENT
        if unit % 4096 == 0:
            self.cells.erase(address, length)  # whole pages of the sparse store
        else:
            self.cells.write(address, b"\xff" * length)
        return 0

    def erase_all(self) -> int:
        self.cells.clear()
        return 0

    def begin_write(self, address: int) -> int:
        if address % self.geometry.page_size:
            return ALIGNMENT
        self._page_address, self._page = address, bytearray()
        return 0

    def write(self, data: bytes) -> int:
        page = self.geometry.page_size
        view = memoryview(data)
        while view:
            take = page - len(self._page)
            self._page += view[:take]
            view = view[take:]
            if len(self._page) == page:
                status = self._program()
                if status:
                    return status
        return 0

    def end_write(self) -> int:
        status = self._program() if self._page_address is not None and self._page else 0
        self._page_address = None
        return status

    def abandon_write(self) -> None:
        self._page_address, self._page = None, bytearray()

    def _program(self) -> int:
        assert self._page_address is not None
        size = self.geometry.page_size
        address, data = self._page_address, bytes(self._page) + b"\xff" * (size - len(self._page))
        self._page_address, self._page = address + size, bytearray()
        if self.cells.read(address, size) != b"\xff" * size:
            return CUMULATIVE_WRITE
        self.cells.program(address, data)
        return 0

    def read(self, address: int, length: int) -> bytes:
        return self.cells.read(address, length)
