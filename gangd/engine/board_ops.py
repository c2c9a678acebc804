"""What a plan's steps do on the board: blocking spsdk calls, run in the port's worker thread.

The job engine (`job.py`) decides when and under which deadline; these functions are the commands
themselves, over spsdk's own SDP and McuBoot clients.
"""

from __future__ import annotations

from spsdk.mboot.properties import PropertyTag

from gangd.config.recipe import Image
from gangd.engine.fuses import FuseDecision
from gangd.engine.plan import SECTOR_SIZE, ConfigureMemory, LoadFlashloader


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


def verify(mboot, image: Image, memory_id: int = 0) -> None:
    back = mboot.read_memory(image.address, len(image.data), memory_id)
    if back != image.data:
        first = next((i for i, (a, b) in enumerate(zip(back, image.data)) if a != b), len(back))
        raise VerifyMismatch(f"read-back differs from the image at 0x{image.address + first:08x}")


def blank_sectors(mboot, address: int, length: int, memory_id: int = 0) -> list[bool]:
    """Which sectors of the range read back all 0xFF (a failed read: none of them)."""
    data = mboot.read_memory(address, length, memory_id) or b""
    if len(data) != length:
        return [False] * (-(-length // SECTOR_SIZE))
    return [
        data[o : o + SECTOR_SIZE].count(0xFF) == len(data[o : o + SECTOR_SIZE]) for o in range(0, length, SECTOR_SIZE)
    ]


def erase_runs(mboot, address: int, runs: list[tuple[int, int]], memory_id: int = 0) -> None:
    for offset, length in runs:
        mboot.flash_erase_region(address + offset, length, memory_id)


def write_runs(mboot, image: Image, runs: list[tuple[int, int]], memory_id: int = 0) -> None:
    """One write-memory per run; each run starts on a page boundary, as the driver requires."""
    for offset, length in runs:
        mboot.write_memory(image.address + offset, image.data[offset : offset + length], memory_id)


def read_fuses(mboot, indexes: list[int]) -> dict[int, int]:
    return {index: mboot.efuse_read_once(index) for index in indexes}


def burn(mboot, burns: list[FuseDecision]) -> dict[int, int]:
    """Program each word's missing bits and read it back."""
    after = {}
    for decision in burns:
        mboot.efuse_program_once(decision.word.index, decision.bits_to_burn)
        after[decision.word.index] = mboot.efuse_read_once(decision.word.index)
    return after
