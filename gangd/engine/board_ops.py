"""What a plan's steps do on the board: blocking spsdk calls, run in the port's worker thread.

The job engine (`job.py`) decides when and under which deadline; these functions are the commands
themselves, over spsdk's own SDP and McuBoot clients.
"""

from __future__ import annotations

from spsdk.mboot.properties import PropertyTag

from gangd.config.recipe import Image
from gangd.engine.fuses import FuseDecision
from gangd.engine.plan import SECTOR_SIZE, ConfigureMemory, LoadFlashloader
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


def verify(mboot, image: Image, memory_id: int = 0, progress: Progress | None = None) -> None:
    back = stream.read_memory(mboot, image.address, len(image.data), memory_id, progress)
    if back != image.data:
        first = next((i for i, (a, b) in enumerate(zip(back, image.data)) if a != b), len(back))
        raise VerifyMismatch(f"read-back differs from the image at 0x{image.address + first:08x}")


# The blank check's sample: the head of the image's range, where an old image starts (its boot
# header and vector table). Two NOR pages: one report on USB HID (1012-byte packets), one on UART.
SAMPLE_SIZE = 512
# Payload per report on the RT10xx flashloader's HID link (docs/FLASHLOADER.md "USB"); used only to
# compare the cost of reading a few ranges with the cost of reading the whole range.
REPORT_PAYLOAD = 1012
COMMAND_REPORTS = 3  # a read-memory's command, its response and its closing status


def blank_check(
    mboot, address: int, length: int, written: list[tuple[int, int]], memory_id: int = 0
) -> tuple[list[bool], bool]:
    """Which sectors of the range need no erase, and whether that is presumed (True) or read.

    Reading the whole range costs as much USB time as writing it. So: read a sample at the head
    of the range; if it is not all 0xFF the range holds an old image and is read whole
    (`blank_sectors`). If it is blank, the range is presumed blank and only what the flashloader
    will not check itself is read: the parts of the range the write leaves alone (the image's
    0xFF pages, the tail past its end). The pages the write programs are checked by the
    flashloader, which refuses an unerased page with 10203 before programming it
    (docs/FLASHLOADER.md, cumulative-write check); the write step answers that refusal by
    reading the range, erasing what is not blank and writing again (steps.write).
    """
    head = stream.read_memory(mboot, address, min(SAMPLE_SIZE, length), memory_id)
    if head.count(0xFF) != len(head):
        return blank_sectors(mboot, address, length, memory_id), False
    gaps = uncovered(length, written)
    if sum(_read_cost(n) for _, n in gaps) >= _read_cost(length):
        return blank_sectors(mboot, address, length, memory_id), False
    blank = [True] * (-(-length // SECTOR_SIZE))
    for offset, size in gaps:
        data = stream.read_memory(mboot, address + offset, size, memory_id)
        for sector in range(offset // SECTOR_SIZE, -(-(offset + size) // SECTOR_SIZE)):
            start = max(offset, sector * SECTOR_SIZE) - offset
            end = min(offset + size, (sector + 1) * SECTOR_SIZE) - offset
            if data[start:end].count(0xFF) != end - start:
                blank[sector] = False
    return blank, True


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
        return [False] * (-(-length // SECTOR_SIZE))
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
