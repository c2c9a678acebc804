"""The simulated internal flash of an MCU-bootloader ROM (gangd/sim/internal_flash.py), rule by rule:
the alignment refusals are the flash driver's 101 kStatus_FLASH_AlignmentError (flash_check_range),
by the sector and page the ROM answers (LPC55S69: 32 KiB and 512 B, spsdk examples/blhost/blhost.ipynb);
a second program of an unerased page is 10203 kStatusMemoryCumulativeWrite, never 10206."""

from __future__ import annotations

from spsdk.mboot.error_codes import StatusCode

from gangd.config.family import load_family
from gangd.sim.internal_flash import InternalFlash

ALIGNMENT = StatusCode.FLASH_ALIGNMENT_ERROR.tag
CUMULATIVE = StatusCode.MEMORY_CUMULATIVE_WRITE.tag


def lpc55s69() -> InternalFlash:
    family = load_family("lpc55s69")
    assert family.internal_flash is not None
    return InternalFlash(family.internal_flash, family)


def test_the_rom_answers_32_kib_sectors_and_512_byte_pages():
    flash = lpc55s69()
    assert (flash.geometry.sector_size, flash.geometry.page_size) == (32 * 1024, 512)


def test_an_erase_off_the_answered_sector_is_101_and_erases_nothing():
    flash = lpc55s69()
    assert flash.begin_write(0) == 0 and flash.write(b"\x11" * 1024) == 0 and flash.end_write() == 0
    assert flash.erase(0x200, 0x200) == ALIGNMENT  # one page: the ROM erases by its 32 KiB sector
    assert flash.erase(0, 0x8200) == ALIGNMENT
    assert flash.read(0, 1024) == b"\x11" * 1024
    assert flash.erase(0, 0x8000) == 0 and flash.read(0, 1024) == b"\xff" * 1024


def test_a_write_off_a_page_is_101_and_a_second_program_is_cumulative_not_alignment():
    flash = lpc55s69()
    assert flash.begin_write(0x100) == ALIGNMENT
    assert flash.begin_write(0x200) == 0 and flash.write(b"\x22" * 600) == 0 and flash.end_write() == 0
    assert flash.read(0x200, 1024) == b"\x22" * 600 + b"\xff" * 424  # the last page padded with 0xFF
    assert flash.begin_write(0x400) == 0 and flash.write(b"\x33" * 4) == 0
    assert flash.end_write() == CUMULATIVE  # that page was programmed (its padding) without an erase
