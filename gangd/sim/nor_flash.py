"""A serial NOR flash part on a simulated board: its geometry, its block protection, its read path.

What the flashloader's driver does with it (sector-widened erase, page buffers, read-backs at the
configured clock) is in `flexspi_nor.py`; this module is the chip and the board's wiring to it:

- Geometry and JEDEC ids from the parts' datasheets (Winbond W25Q64JV/W25Q128JV rev. 2021,
  ISSI IS25LP064A rev. 2019): 256-byte pages, 4 KiB sectors, 64 KiB blocks. The RT1020-EVK carries
  an IS25LP064A; W25Q64JV is the part of spsdk's `W25QxxxJV` memory-configuration preset (option
  0xC0000007) and of the forum case in docs/FLASHLOADER.md (RT1021 + W25Q64JVS).
- HyperFlash (Cypress S26KS512S, datasheet rev. 2019, the RT1050 EVKB's part): 64 MiB, 512-byte
  write buffer (page), uniform 256 KiB sectors; it has no SFDP table (the driver reads its CFI
  through the HyperBus protocol), so it answers only HyperFlash option words (device type 2/3).
- Block protection: the status register's block-protect bits make the chip ignore erase and
  program commands in the protected range (datasheets: "Write Protection"); modelled for the whole
  array, as an application that locks its flash leaves it. Volatile bits (written with 50h, Volatile
  SR Write Enable) are lost at power-off and kept through a reset of the MCU; non-volatile bits
  survive everything. A USB reset of the MCU does not power-cycle the flash.
- The read path: each board has a highest serial clock at which its reads are reliable (signal
  integrity, DQS pad loading, temperature). Above it, each 32-bit word read has one flipped bit
  with a probability that grows with the clock; erase and program run at the safe clock and are
  not affected. Our choice, no source: p(word) = 0.05 x (clock / limit - 1), so at 133 MHz on a
  100 MHz board a 45 KiB read back is certain to fail and a 4-byte read usually passes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gangd.sim.memory import SparseMemory

VOLATILE = "power"  # cleared by a power cycle or a replug, kept through a reset
NON_VOLATILE = "always"  # survives everything the host can do over the bootloader protocol
PROTECTION_KINDS = (VOLATILE, NON_VOLATILE)

_FLIP_PER_EXCESS = 0.05
SERIAL = "serial"
HYPERFLASH = "hyperflash"
HYPERFLASH_PART = "S26KS512S"


@dataclass(frozen=True)
class FlashPart:
    name: str
    jedec_id: int  # manufacturer, memory type, capacity
    size: int
    page_size: int = 256
    sector_size: int = 4096
    block_size: int = 64 * 1024
    interface: str = SERIAL  # SERIAL (SPI NOR with SFDP) or HYPERFLASH


PARTS = {
    part.name: part
    for part in (
        FlashPart("W25Q64JV", 0xEF4017, 8 * 1024 * 1024),
        FlashPart("W25Q128JV", 0xEF4018, 16 * 1024 * 1024),
        FlashPart("IS25LP064A", 0x9D6017, 8 * 1024 * 1024),
        # Manufacturer 01h (Cypress); HyperFlash ids are CFI words, not a JEDEC 9Fh answer. 64 MiB,
        # 512-byte pages, 256 KiB sectors and blocks: the RT1050 EVKB's flash_opts.h
        # (nxp-mcuxpresso/mcux-sdk-examples evkbimxrt1050) and the Cypress S26KS512S datasheet.
        FlashPart(HYPERFLASH_PART, 0x010000, 64 * 1024 * 1024, 512, 256 * 1024, 256 * 1024, HYPERFLASH),
    )
}
DEFAULT_PART = "W25Q64JV"


def part_for(option_words: tuple[int, ...]) -> str:
    """The part a simulated board carries for a recipe's FlexSPI option words: the RT1050 EVKB's
    HyperFlash for HyperFlash words (option0 device type 2/3, bits 23:20), else the serial NOR
    default; a dry run of a HyperFlash recipe is then not refused by its own simulated boards."""
    is_option = bool(option_words) and option_words[0] >> 28 == 0xC
    return HYPERFLASH_PART if is_option and (option_words[0] >> 20) & 0xF in (2, 3) else DEFAULT_PART


class NorFlash:
    def __init__(
        self,
        part: FlashPart,
        max_read_mhz: float | None = None,
        protection: str | None = None,
        seed: object = None,
    ) -> None:
        self.part = part
        self.max_read_mhz = max_read_mhz  # None: reliable at every clock the driver can select
        self.protection = protection
        self.block_protect = protection is not None  # the status register's BP bits
        self.cells = SparseMemory(0xFF)
        self._rng = random.Random(f"nor:{seed}")

    @property
    def protected(self) -> bool:
        return self.block_protect

    def power_off(self) -> None:
        """Power lost: volatile status-register bits return to their non-volatile values."""
        if self.protection == VOLATILE:
            self.block_protect = False

    def erase(self, offset: int, length: int) -> None:
        if not self.block_protect:  # a protected chip ignores the erase and reports nothing
            self.cells.erase(offset, length)

    def program(self, offset: int, data: bytes) -> None:
        if not self.block_protect:
            self.cells.program(offset, data)

    def restore(self, offset: int, data: bytes) -> None:
        """Put cells back as they were (the simulator undoing pages a driver never programmed)."""
        self.cells.write(offset, data)

    def contents(self, offset: int, length: int) -> bytes:
        """What the cells hold, whatever the read path does (for tests and the operator)."""
        return self.cells.read(offset, length)

    def read(self, offset: int, length: int, clock_mhz: float) -> bytes:
        """A read at `clock_mhz`: exact up to the board's limit, flipped bits above it."""
        data = self.cells.read(offset, length)
        if self.max_read_mhz is None or clock_mhz <= self.max_read_mhz or not data:
            return data
        p = min(1.0, _FLIP_PER_EXCESS * (clock_mhz / self.max_read_mhz - 1))
        out = bytearray(data)
        words = -(-len(out) // 4)
        word = self._skip(p)
        while word < words:  # geometric gaps: cost grows with the flips, not with the length
            bit = self._rng.randrange(min(32, 8 * (len(out) - 4 * word)))
            out[4 * word + bit // 8] ^= 1 << (bit % 8)
            word += 1 + self._skip(p)
        return bytes(out)

    def _skip(self, p: float) -> int:
        if p >= 1.0:
            return 0
        return int(math.log(1.0 - self._rng.random()) / math.log(1.0 - p))
