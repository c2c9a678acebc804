"""What a plan's steps do on the board: synchronous spsdk calls, run by `StepContext.run` (on
trio's thread or in the port's worker thread: context.py).

The job engine (`job.py`) decides when and under which deadline; these functions are the commands
themselves, over spsdk's own SDP and McuBoot clients.
"""

from __future__ import annotations

from spsdk.mboot.exceptions import McuBootCommandError
from spsdk.mboot.properties import ExtMemPropTags, PropertyTag

from gangd.config.geometry import FLEXSPI_NOR, INTERNAL_FLASH, SECTOR_SIZE, Geometry, round_up
from gangd.config.recipe import Image
from gangd.engine.fuses import FuseDecision
from gangd.engine.plan import ConfigureMemory, LoadFlashloader
from gangd.io.transport import stream
from gangd.io.transport.stream import Progress


class VerifyMismatch(Exception):
    """The image read back differs from the image written."""


def load_flashloader(sdp, step: LoadFlashloader) -> None:
    sdp.open()
    sdp.write_file(step.address, step.data)
    sdp.jump_and_run(step.jump_address)


def open_mboot(mboot):
    mboot.open()
    return mboot


def identify(mboot) -> str | None:
    """The board's UniqueDeviceIdent as one hex string, most significant word first."""
    values = mboot.get_property(PropertyTag.UNIQUE_DEVICE_IDENT)
    return "".join(f"{v:08x}" for v in reversed(values)) if values else None


def configure(mboot, step: ConfigureMemory, option_words: tuple[int, ...]) -> None:
    """The user's `fill-memory ADDR 4 WORD word` per option word, then `configure-memory ID ADDR`."""
    for offset, word in enumerate(option_words):
        mboot.fill_memory(step.option_address + 4 * offset, 4, word)
    mboot.configure_memory(step.option_address, step.memory_id)


def geometry(mboot, memory_id: int, planned: Geometry) -> Geometry:
    """The erase sector and program page of the configured memory, as the board answers them:
    get-property FlashSectorSize (5) and FlashPageSize (0x1B) for internal flash (mcu-boot
    `property.c`), ExternalMemoryAttributes (0x19, index = memory id) for a configured FlexSPI NOR,
    whose page, sector and block sizes the driver took from the part (SFDP, or the FCFB's
    pageSize/sectorSize for HyperFlash). A board that does not answer (a ROM without the property,
    a memory the flashloader cannot describe) leaves the planned geometry, from the facts."""
    try:
        if memory_id == INTERNAL_FLASH:
            sector = mboot.get_property(PropertyTag.FLASH_SECTOR_SIZE)
            page = mboot.get_property(PropertyTag.FLASH_PAGE_SIZE)
            if sector and page and sector[0] > 0 and page[0] > 0:
                return Geometry(sector[0], page[0], "board")
        elif memory_id == FLEXSPI_NOR:
            values = mboot.get_property(PropertyTag.EXTERNAL_MEMORY_ATTRIBUTES, memory_id)
            # [flags, start, size in KiB, page, sector, block]: a size is valid when its flag is set.
            wanted = ExtMemPropTags.PAGE_SIZE.tag | ExtMemPropTags.SECTOR_SIZE.tag
            if values and len(values) >= 5 and values[0] & wanted == wanted and values[3] > 0 and values[4] > 0:
                return Geometry(values[4], values[3], "board")
    except McuBootCommandError:
        pass
    return planned


def identify_and_geometry(mboot, memory_id: int, planned: Geometry) -> tuple[str | None, Geometry]:
    """identify, then the internal flash's geometry: one step of the plan (the flash is ready as
    soon as the ROM answers; there is no configure-memory to ask after)."""
    return identify(mboot), geometry(mboot, memory_id, planned)


def configure_and_geometry(mboot, step: ConfigureMemory, option_words: tuple[int, ...], planned: Geometry) -> Geometry:
    """configure, then the configured memory's geometry: one step of the plan."""
    configure(mboot, step, option_words)
    return geometry(mboot, step.memory_id, planned)


def verify(mboot, image: Image, memory_id: int = 0, progress: Progress | None = None) -> None:
    """Read the image's range back and compare it window by window as it arrives: a board's
    read-back costs gangd one window, not the image's size (the image is held once per station)."""
    expected = memoryview(image.data)
    first: list[int] = []

    def compare(offset: int, window: bytearray) -> None:
        if not first and window != expected[offset : offset + len(window)]:  # bytearray ==: a memcmp
            first.append(offset + next(i for i, (a, b) in enumerate(zip(window, expected[offset:])) if a != b))

    received = stream.read_windows(mboot, image.address, len(image.data), compare, memory_id, progress)
    if first or received < len(image.data):
        at = first[0] if first else received
        raise VerifyMismatch(f"read-back differs from the image at 0x{image.address + at:08x}")


# The blank check's sample: the head of the image's range, where an old image starts (its boot
# header and vector table). Two NOR pages: one report on USB HID (1012-byte packets), one on UART.
SAMPLE_SIZE = 512
# Payload per report on the RT10xx flashloader's HID link (docs/FLASHLOADER.md "USB"); used only to
# compare the cost of reading a few ranges with the cost of reading the whole range.
REPORT_PAYLOAD = 1012
COMMAND_REPORTS = 3  # a read-memory's command, its response and its closing status
# Serial NOR's 64 KiB block: the unit an aligned erase runs in (nor_flash.py's parts; datasheets).
BLOCK_SIZE = 64 * 1024


def blank_check(
    mboot, address: int, length: int, written: list[tuple[int, int]], memory_id: int = 0
) -> tuple[list[bool], bool]:
    """Which sectors of the range need no erase, and whether any of that is presumed (True).

    Reading the whole range costs as much USB time as writing it, so the range is sampled: the
    head of each 64 KiB erase block in it (where an old image's data starts, and the unit the
    driver erases an aligned range in). A block whose sample holds data is erased whole when it
    lies whole in the range (a block erase costs what 16 sector erases' worth of reading would
    not save); a partial block with data is read, to erase only its sectors that hold something.
    A block whose sample is blank is presumed blank, and only what the flashloader will not check
    itself is read there: the parts the write leaves alone (the image's 0xFF pages, the tail past
    its end). The pages the write programs are checked by the flashloader, which refuses an
    unerased page with 10203 before programming it (docs/FLASHLOADER.md, cumulative-write check);
    the write step answers that refusal by reading the range, erasing what is not blank and
    writing again (steps.write). Verification still reads every byte.
    """
    blank = [True] * (round_up(length) // SECTOR_SIZE)
    presumed: list[tuple[int, int]] = []  # (offset, length) of the pieces presumed blank
    for offset, size in blocks(address, length):
        sample = stream.read_memory(mboot, address + offset, min(SAMPLE_SIZE, size), memory_id)
        if sample.count(0xFF) == len(sample):
            presumed.append((offset, size))
        elif size == BLOCK_SIZE:
            blank[offset // SECTOR_SIZE : (offset + size) // SECTOR_SIZE] = [False] * (size // SECTOR_SIZE)
        else:
            _mark(blank, offset, stream.read_memory(mboot, address + offset, size, memory_id))
    gaps = [gap for piece in presumed for gap in _within(uncovered(length, written), piece)]
    if sum(_read_cost(n) for _, n in gaps) >= sum(_read_cost(n) for _, n in presumed):
        gaps = presumed  # cheaper to read the presumed pieces whole
    for offset, size in gaps:
        _mark(blank, offset, stream.read_memory(mboot, address + offset, size, memory_id))
    return blank, bool(presumed) and gaps is not presumed


def blocks(address: int, length: int) -> list[tuple[int, int]]:
    """(offset, length) of the range cut at 64 KiB erase-block boundaries (absolute addresses)."""
    pieces, at = [], 0
    while at < length:
        end = min(length, (address + at) // BLOCK_SIZE * BLOCK_SIZE + BLOCK_SIZE - address)
        pieces.append((at, end - at))
        at = end
    return pieces


def _within(gaps: list[tuple[int, int]], piece: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = piece[0], piece[0] + piece[1]
    return [(max(o, start), min(o + n, end) - max(o, start)) for o, n in gaps if o < end and o + n > start]


def _mark(blank: list[bool], offset: int, data: bytes | bytearray) -> None:
    """Sectors of `data` (read at `offset` of the range) holding anything but 0xFF: not blank."""
    for sector in range(offset // SECTOR_SIZE, round_up(offset + len(data)) // SECTOR_SIZE):
        start = max(offset, sector * SECTOR_SIZE) - offset
        end = min(offset + len(data), (sector + 1) * SECTOR_SIZE) - offset
        if data[start:end].count(0xFF) != end - start:
            blank[sector] = False


def uncovered(length: int, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(offset, length) of the parts of [0, length) that no run covers; runs are sorted."""
    gaps, at = [], 0
    for offset, size in runs:
        if offset > at:
            gaps.append((at, offset - at))
        at = max(at, offset + size)
    if at < length:
        gaps.append((at, length - at))
    return gaps


def _read_cost(length: int) -> int:
    return COMMAND_REPORTS + -(-length // REPORT_PAYLOAD)


def blank_sectors(mboot, address: int, length: int, memory_id: int = 0) -> list[bool]:
    """Which sectors of the range read back all 0xFF (a failed read: none of them)."""
    data = stream.read_memory(mboot, address, length, memory_id)
    if len(data) != length:
        return [False] * (round_up(length) // SECTOR_SIZE)
    return [
        data[o : o + SECTOR_SIZE].count(0xFF) == len(data[o : o + SECTOR_SIZE]) for o in range(0, length, SECTOR_SIZE)
    ]


def erase_runs(mboot, address: int, runs: list[tuple[int, int]], memory_id: int = 0) -> None:
    for offset, length in runs:
        mboot.flash_erase_region(address + offset, length, memory_id)


def write_runs(
    mboot, image: Image, runs: list[tuple[int, int]], memory_id: int = 0, progress: Progress | None = None
) -> None:
    """One write-memory per run; each run starts on a page boundary, as the driver requires.
    `progress(done, total)` counts bytes over all the runs."""
    total, before = sum(length for _, length in runs), 0
    view = memoryview(image.data)
    for offset, length in runs:

        def told(done: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done, total)

        stream.write_memory(mboot, image.address + offset, view[offset : offset + length], memory_id, told)
        before += length


def read_fuses(mboot, indexes: list[int]) -> dict[int, int]:
    return {index: mboot.efuse_read_once(index) for index in indexes}


def burn(mboot, burns: list[FuseDecision]) -> dict[int, int]:
    """Program each word's missing bits and read it back."""
    after = {}
    for decision in burns:
        mboot.efuse_program_once(decision.word.index, decision.bits_to_burn)
        after[decision.word.index] = mboot.efuse_read_once(decision.word.index)
    return after
