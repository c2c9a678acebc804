"""The flashloader's FlexSPI NOR driver, rule by rule as NXP's mcu-boot source has it.

Every rule below names where it was read (mcu-boot = `middleware/mcu-boot` of the MCUXpresso SDK;
the facts are collected with their sources in docs/FLASHLOADER.md). Where the simulator
had to choose, the comment says "our choice".

    rule                                                   status   mcu-boot source (SDK 2.11, lines there)
    access before a successful configure-memory            10205    src/memory/src/flexspi_nor_memory.c 919-922
                                                                    (FlexSPI pre-mapped on RT1021's memory map)
    option0 tag not 0xC and not an FCFB block              4        flexspi_nor_mem_config 444-511
    device type other than SFDP SDR/DDR, query pads or     4        src/drivers/flexspi_nor/flexspi_nor_flash.c
      command pads other than 1                                     3385-3387, 2033-2036, parse_sfdp 1610-1613
    no SFDP signature from the flash                       20107    flexspi_nor_read_sfdp_info 1929-1933
    a failed configure leaves the previous state           -        flexspi_nor_mem_config breaks out before
                                                                    isConfigured is touched
    range outside the FlexSPI window or the flash          10200    src/memory/src/memory.c find_map_entry 354-386
    erase: start aligned down, end aligned up to sectors   0        flexspi_nor_mem_erase 924-926
      (ALIGN_DOWN/ALIGN_UP: never an alignment failure)
      erase runs at the safe clock (30 MHz),               -        flexspi_change_serial_clock callers 867/937
      then (VerifyWrites) the widened range is read at     20106    flexspi_nor_mem_erase 945-954,
      max_freq and must be all 0xFF                                 FLEXSPI_NOR_ERASE_VERIFY (on for RT1021)
    write: with no page pending, the address must be       20105    flexspi_nor_mem_write 697-703
      page aligned; the buffer is flushed at the end of             bl_command.c finalize_data_phase 833-850,
      every write-memory and fill-memory, so every                  flexspi_nor_mem_fill 796
      command starts a new write
      flush: pad with 0xFF, the page read at max_freq      10203    flexspi_nor_mem_flush 857-869,
      must be all 0xFF (cumulative-write check)                     is_flexspi_nor_mem_erased 799-821
      program at the safe clock, then (VerifyWrites)       20106    flush 899-908, flexspi_nor_memory_check
      read back at max_freq and compared
    read runs at max_freq through an IP command, no        0        flexspi_nor_mem_read 668-676
      check: a marginal read path returns wrong bytes
    VerifyWrites is property 10, default true              -        src/property/property.h 128, property_imx.c

10203 is kStatusMemoryCumulativeWrite (a page programmed again without an erase), not an alignment
status; 10206 kStatusMemoryAlignmentError is not returned on these paths: a misaligned erase is widened,
a misaligned write is the driver's own 20105. 20106 is kStatus_FlexSPINOR_CommandFailure, "Erase/Program
Verify Error" in flexspi_nor_flash.h: the VerifyWrites read-back after an erase or a page program.

Reads go through IP commands at the configured clock (flexspi_nor_flash_read 3474-3515), so every
read-back above, the cumulative check included, sees a marginal read path. The line numbers are
of SDK 2.11.0's mcu-boot (an RT1170 flashloader); the RT1021 settings (cumulative-write check,
erase verify, 1012-byte HID packets) are from its `targets/MIMXRT1021/src/bootloader_config.h`.
set-property 10 0 is accepted as in the newer `property_imx.c` (SDK 2.11 answered 10301).

The quad-enable step of the SFDP path writes the status register only when QE is clear, and that
write clears the block-protect bits; the write-protect fault models a flash whose application left
QE set with BP bits on, so configure-memory does not clear them (docs/FLASHLOADER.md).
"""

from __future__ import annotations

import struct

from spsdk.mboot.error_codes import StatusCode

from gangd.config.flexspi import FCFB_TAG, OPTION_TAG, NorOption0, NorOption1, clock_mhz
from gangd.sim.board import FlashConfig, SimBoard
from gangd.sim.nor_flash import HYPERFLASH

# The status of each refusal: one table, the rows of the module docstring.
STATUS = {
    "not-configured": StatusCode.MEMORY_NOT_CONFIGURED.tag,  # 10205
    "bad-option": StatusCode.INVALID_ARGUMENT.tag,  # 4
    "sfdp-not-found": StatusCode.FLEXSPINOR_SFDP_NOTFOUND.tag,  # 20107
    "flash-not-found": StatusCode.FLEXSPINOR_FLASH_NOTFOUND.tag,  # 20109
    "write-alignment": StatusCode.FLEXSPINOR_WRITE_ALIGNMENT_ERROR.tag,  # 20105
    "cumulative-write": StatusCode.MEMORY_CUMULATIVE_WRITE.tag,  # 10203
    "command-failure": StatusCode.FLEXSPINOR_COMMANDFAILURE.tag,  # 20106
}
FCFB_SIZE = 512
FCFB_SERIAL_CLK_FREQ = 0x46  # flexspi_mem_config_t.serialClkFreq: the same code as option0's max_freq
# Device types the SFDP path serves: 0 read SFDP in SDR, 1 read SFDP in DDR (flexspi_nor_get_config).
SFDP_DEVICE_TYPES = (0, 1)
# HyperFlash 1V8 (2) and 3V (3), queried and commanded on 8 pads (pads code 3): spsdk's option word
# description (data/common/memcfg/opt_word_flexspi_nor.json) and its hyper_flash preset 0xC0233007
# (memcfg_data.yaml); the driver reads the part's CFI over HyperBus, not SFDP.
HYPERFLASH_DEVICE_TYPES = (2, 3)
OCTAL_PADS = 3


class FlexspiNorDriver:
    """The driver's state on one board while its flashloader runs: configuration, page buffer."""

    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self.verify_writes = True  # property 10, on by default (mcu-boot property.c)
        self._page_address: int | None = None  # flash offset of the page being collected
        self._page = bytearray()

    @property
    def config(self) -> FlashConfig | None:
        return self.board.flash_config

    # --- configure-memory 9 ---------------------------------------------------------------------

    def configure(self, option_address: int) -> int:
        """Parse the option words (or FCFB block) at a RAM address and probe the flash."""
        ram = self.board.ram
        option0 = struct.unpack("<I", ram.read(option_address, 4))[0]
        if option0 == FCFB_TAG:
            block = ram.read(option_address, FCFB_SIZE)
            words: tuple[int, ...] = (option0,)
            code = block[FCFB_SERIAL_CLK_FREQ]
        elif option0 >> 28 == OPTION_TAG:
            fields = NorOption0.parse(option0)
            words = struct.unpack(f"<{1 + fields.option_size}I", ram.read(option_address, 4 * (1 + fields.option_size)))
            hyperflash = fields.device_type in HYPERFLASH_DEVICE_TYPES
            pads = OCTAL_PADS if hyperflash else 0
            if (
                fields.query_pads != pads
                or fields.cmd_pads != pads
                or not (hyperflash or fields.device_type in SFDP_DEVICE_TYPES)
            ):
                # The SFDP path serves 1-pad queries and commands; HyperFlash runs on 8 pads.
                return STATUS["bad-option"]
            if hyperflash != (self.board.flash.part.interface == HYPERFLASH):
                # Our choice, from memory of mcu-boot's flexspi_nor_get_config (not re-read here):
                # an SFDP read of a HyperFlash finds no "SFDP" signature (20107); a HyperFlash CFI
                # read of a serial NOR finds no flash (20109).
                return STATUS["flash-not-found" if hyperflash else "sfdp-not-found"]
            if len(words) > 1:
                NorOption1.parse(words[1])  # drive strength, dummy cycles: no effect modelled (our choice)
            code = fields.max_freq
        else:
            return STATUS["bad-option"]
        window = self.board.flexspi_window
        assert window is not None, "configure-memory 9 on a family without a FlexSPI window"
        self.board.flash_config = FlashConfig(
            region=window,
            part=self.board.flash.part,
            read_mhz=clock_mhz(self.board.family.name, code),
            option_words=words,
        )
        self._page_address = None
        return 0

    # --- erase ----------------------------------------------------------------------------------

    def erase(self, address: int, length: int) -> int:
        """Erase whole sectors around the range at the safe clock, then read them back at max_freq."""
        config = self._configured()
        sector = config.sector_size
        start = self._offset(address) // sector * sector
        end = -(-(self._offset(address) + length) // sector) * sector
        clock = self.board.clock
        clock.charge(clock.model.erase_plan_s(start, end - start))
        self.board.flash.erase(start, end - start)
        if self.verify_writes:
            back = self.board.flash.read(start, end - start, config.read_mhz)
            if back.count(0xFF) != len(back):
                return STATUS["command-failure"]
        return 0

    def erase_all(self) -> int:
        config = self._configured()
        model = self.board.clock.model
        self.board.clock.charge(model.chip_erase_s * model.flash_slowdown)
        self.board.flash.erase(0, config.size)
        if self.verify_writes:
            back = self.board.flash.read(0, config.size, config.read_mhz)
            if back.count(0xFF) != len(back):
                return STATUS["command-failure"]
        return 0

    # --- write: one page buffer, flushed at the end of each command ---------------------------

    def begin_write(self, address: int) -> int:
        config = self._configured()
        if self._offset(address) % config.page_size:
            return STATUS["write-alignment"]
        self._page_address, self._page = self._offset(address), bytearray()
        return 0

    def write(self, data: bytes) -> int:
        """Collect data; every full page is programmed as it completes. Whole pages that arrive
        together are checked, programmed and read back as one span (`_program_pages`): the same
        rules page by page, at the cost of a few calls per span instead of per page."""
        page_size = self._configured().page_size
        view = memoryview(data)
        if self._page:  # complete the page already collected
            take = page_size - len(self._page)
            self._page += view[:take]
            view = view[take:]
            if len(self._page) < page_size:
                return 0
            status = self._program_page()
            if status:
                return status
        whole = len(view) // page_size * page_size
        if whole:
            status = self._program_pages(data if whole == len(data) else bytes(view[:whole]))
            if status:
                return status
        self._page += view[whole:]
        return 0

    def end_write(self) -> int:
        """The command's data phase ended: the partial page is padded with 0xFF and programmed."""
        if self._page_address is None or not self._page:
            self._page_address = None
            return 0
        status = self._program_page()
        self._page_address = None
        return status

    def abandon_write(self) -> None:
        """The command failed mid-data: the partial page is dropped, not programmed."""
        self._page_address, self._page = None, bytearray()

    def _program_page(self) -> int:
        config = self._configured()
        assert self._page_address is not None
        address, page = self._page_address, bytes(self._page) + b"\xff" * (config.page_size - len(self._page))
        self._page_address, self._page = address + config.page_size, bytearray()
        flash = self.board.flash
        if flash.read(address, config.page_size, config.read_mhz) != b"\xff" * len(page):
            return STATUS["cumulative-write"]
        model = self.board.clock.model
        self.board.clock.owe(model.page_program_s * model.flash_slowdown)  # seen in the reply only
        flash.program(address, page)
        if self.verify_writes and flash.read(address, config.page_size, config.read_mhz) != page:
            return STATUS["command-failure"]
        return 0

    def _program_pages(self, span: bytes) -> int:
        """Whole pages at the page pointer, with `_program_page`'s rules for each page in order:
        the cumulative-write check (10203) before a page is programmed, the read-back (20106)
        after. A page that fails stops the span there; the pages before it stay programmed, the
        pages after it are never programmed, and the pointer moves past the failed page."""
        config = self._configured()
        page_size = config.page_size
        assert self._page_address is not None
        address = self._page_address
        flash = self.board.flash
        before = flash.read(address, len(span), config.read_mhz)
        blank = len(span) if before.count(0xFF) == len(span) else _first_not(before, 0xFF) // page_size * page_size
        if blank:
            model = self.board.clock.model
            self.board.clock.owe(blank // page_size * model.page_program_s * model.flash_slowdown)
            # What the cells hold, to put back pages the driver would never have programmed; only a
            # flash whose reads can be wrong can fail the read-back (a protected one ignores the program).
            held = flash.contents(address, blank) if flash.max_read_mhz is not None else None
            flash.program(address, span[:blank])
            if self.verify_writes:
                back = flash.read(address, blank, config.read_mhz)
                if back != span[:blank]:
                    bad = _first_difference(back, span) // page_size * page_size
                    # The driver stopped at the page that read back wrong: the pages after it were
                    # never programmed.
                    after = bad + page_size
                    if after < blank and held is not None:
                        flash.restore(address + after, held[after:])
                    self._page_address = address + after
                    return STATUS["command-failure"]
        if blank < len(span):
            self._page_address = address + blank + page_size
            return STATUS["cumulative-write"]
        self._page_address = address + len(span)
        return 0

    # --- read -----------------------------------------------------------------------------------

    def read(self, address: int, length: int) -> bytes:
        """At max_freq and unchecked: a marginal read path returns wrong bytes with status 0."""
        config = self._configured()
        return self.board.flash.read(self._offset(address), length, config.read_mhz)

    # --- helpers --------------------------------------------------------------------------------

    def _configured(self) -> FlashConfig:
        config = self.board.flash_config
        assert config is not None, "the engine checks configuration (10205) before the driver runs"
        return config

    def _offset(self, address: int) -> int:
        return address - self._configured().region.start


def _first_not(data: bytes, value: int) -> int:
    """The index of the first byte of `data` other than `value` (len(data) if none)."""
    stripped = data.lstrip(bytes([value]))
    return len(data) - len(stripped)


def _first_difference(a: bytes, b: bytes) -> int:
    """The index of the first byte where `a` and `b` differ (a is the shorter or equal)."""
    low, high = 0, len(a)
    while low < high:  # bisect on equal prefixes: C compares, O(log n) Python steps
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
