"""What a job does to each board. Until recipes come from configuration, one built-in flow:
the user's i.MX RT1020 flow (load flashloader over SDP, configure FlexSPI NOR with option
0xC0000007 at 0x2000, erase, write, verify, reset)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gangd.config.family import FamilyInfo, load_family
from gangd.config.geometry import SECTOR_SIZE, SERIAL_NOR, Geometry, page_runs

if TYPE_CHECKING:
    from gangd.config.secure_boot import SecureBoot


@dataclass(frozen=True)
class Image:
    address: int
    data: bytes
    path: str | None = None  # the file it came from, as the configuration names it (for `gangd plan`)
    geometry: Geometry = SERIAL_NOR  # of the memory it goes to, as planned (the board may answer another)

    @property
    def erase_start(self) -> int:
        """The first sector the image touches (the image itself may start inside it)."""
        return self.geometry.span(self.address, len(self.data))[0]

    @property
    def erase_length(self) -> int:
        """The bytes of whole sectors the image touches, from erase_start."""
        return self.geometry.span(self.address, len(self.data))[1]

    @functools.cached_property
    def sha256(self) -> str:  # once per image, not once per board (2-3 ms per MiB)
        return hashlib.sha256(self.data).hexdigest()

    @functools.cached_property
    def page_runs(self) -> tuple[tuple[int, int], ...]:
        """The runs of pages holding something other than 0xFF (geometry.page_runs): a scan of the
        whole image, once per image, not twice per board (the blank check and the write)."""
        return tuple(page_runs(self.data, self.geometry.page_size))

    def on(self, geometry: Geometry) -> Image:
        """The same image for a memory of another geometry (the one the board answered)."""
        return self if geometry == self.geometry else replace(self, geometry=geometry)

    def page_aligned(self) -> Image:
        """The image from the page boundary at or below its start, the bytes before it 0xFF: a write
        must start on a page (20105 from the FlexSPI NOR driver, 101 from the internal flash's), and
        0xFF programs nothing over the erased sector it lies in."""
        start = self.geometry.page_start(self.address)
        if start == self.address:
            return self
        return replace(self, address=start, data=b"\xff" * (self.address - start) + self.data)


@dataclass(frozen=True)
class Deadlines:
    """Seconds each step may take. Data steps add time per byte at a slow link's pace."""

    load_flashloader_s: float = 30.0
    replug_s: float = 10.0
    command_s: float = 10.0
    per_byte_s: float = 1 / 100_000  # 100 kB/s: half the slowest full-speed HID path
    per_erase_sector_s: float = 0.5  # ten times a sector's datasheet worst case
    reset_replug_s: float = 5.0

    def data_s(self, length: int) -> float:
        return self.command_s + length * self.per_byte_s

    def erase_s(self, length: int) -> float:
        return self.command_s + (length // SECTOR_SIZE) * self.per_erase_sector_s


FUSE_POLICIES = ("never", "if-blank", "enforce")
MARGINAL_POLICIES = ("accept", "reject")


@dataclass(frozen=True)
class FuseWord:
    name: str  # spsdk's name of the word, e.g. SRK_HASH[31:0]
    index: int
    value: int


@dataclass(frozen=True)
class FusePlan:
    """OTP words to burn. `never`: burn nothing (the default). `if-blank`: burn only words that read
    0, and pass words already holding exactly the value. `enforce`: also burn the missing bits of a
    word whose burned bits are a subset of the value. A word holding a bit the value does not have
    conflicts under every policy: the board is failed permanently, nothing written."""

    policy: str = "never"
    words: tuple[FuseWord, ...] = ()


BOARD_DATA_SOURCES = ("counter", "list")
BOARD_DATA_ENCODINGS = ("text", "hex", "u32le")


@dataclass(frozen=True)
class BoardData:
    """A value each board gets once and no other board ever gets: a serial number from a counter
    (`format` applied to start, start + step, ...) or the next unused line of a list file (MAC
    addresses). Written to flash at `address` (`encoding`: text, hex digits as bytes, or a 32-bit
    little-endian number; padded with 0xFF to `size`), or burned into a fuse word."""

    name: str
    source: str  # counter | list
    format: str = "{}"
    start: int = 1
    step: int = 1
    list_file: str | None = None  # absolute path of the list
    address: int | None = None
    encoding: str = "text"
    size: int = 0
    fuse: FuseWord | None = None  # value filled in per board

    def encode(self, value: str) -> bytes:
        if self.encoding == "hex":
            data = bytes.fromhex(value.replace(":", "").replace("-", ""))
        elif self.encoding == "u32le":
            data = int(value, 0).to_bytes(4, "little")
        else:
            data = value.encode()
        return data + b"\xff" * (self.size - len(data))

    def as_int(self, value: str) -> int:
        """The value as a number, for a fuse word."""
        return int(value.replace(":", "").replace("-", ""), 16) if self.source == "list" else int(value, 0)


@dataclass(frozen=True)
class RecoveryPolicy:
    max_attempts: int = 3  # runs of the whole flow for one board
    transient_retries: int = 2  # retries of one step after re-configuring memory
    backoff_s: float = 0.2
    backoff_max_s: float = 2.0
    suspect_after: int = 3  # consecutive failures on a port while its boards pass elsewhere
    power_cycle: bool = False  # may gangd write the hub port's sysfs `disable` attribute

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class TraceSettings:
    """`[trace]`: where each job's USB conversation is kept (gangd/trace). `keep`: "failed" (jobs
    that did not succeed) or "all"; `payload`: "full" or "hash" (image bytes replaced by their
    length and sha256: a trace safe to send); the oldest traces are removed once the directory
    holds more than `max_bytes`. A job holds its reports in memory until it ends, at most
    `max_job_bytes` of them: past that its trace keeps its start and its latest reports, and says
    how many were dropped between them (gangd/trace/conversation.py)."""

    dir: str
    keep: str = "failed"
    payload: str = "full"
    max_bytes: int = 256 * 1024 * 1024
    max_job_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Recipe:
    family: FamilyInfo
    flashloader: bytes
    flashloader_address: int
    jump_address: int
    memory_id: int
    option_address: int
    option_words: tuple[int, ...]
    images: tuple[Image, ...]
    verify: bool = True
    final_action: str = "reset"  # or "leave"
    # The minimal write ([write]): read the image's sectors first and erase only those not blank;
    # program only pages holding something other than 0xFF; after the reset, hold the port until
    # the board re-enumerates (wait_reboot) or end the job and watch for it without holding.
    blank_check: bool = True
    skip_blank_pages: bool = True
    wait_reboot: bool = False
    # A board that reads reliably only below the recipe's flash clock: "accept" (programmed at the
    # lower clock, flagged in its record) or "reject" (failed).
    quality_marginal: str = "accept"
    fuses: FusePlan = field(default_factory=FusePlan)
    flashloader_path: str | None = None  # as the configuration names it (for `gangd plan`)
    board_data: tuple[BoardData, ...] = ()
    recovery: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    deadlines: Deadlines = field(default_factory=Deadlines)
    secure_boot: SecureBoot | None = None  # [secure_boot]: SRK, proof, close, confirm, locks
    # Of the configured memory, as planned (config/geometry.py planned_geometry); the job asks the
    # board before its first erase and uses the board's answer where it differs.
    geometry: Geometry = SERIAL_NOR
    trace: TraceSettings | None = None  # None: no traces


def builtin_rt1020(image: bytes, flashloader: bytes, jump_address: int, deadlines: Deadlines | None = None) -> Recipe:
    return Recipe(
        family=load_family("mimxrt1020"),
        flashloader=flashloader,
        flashloader_address=0x2000_0000,
        jump_address=jump_address,
        memory_id=9,
        option_address=0x2000,
        option_words=(0xC000_0007,),
        images=(Image(0x6000_0000, image),),
        deadlines=deadlines or Deadlines(),
    )


def with_trace_dir(recipe: Recipe, directory: str) -> Recipe:
    """`gangd run --trace DIR`: the recipe's [trace] settings (or the defaults) in that directory."""
    base = recipe.trace or TraceSettings(directory)
    return replace(recipe, trace=replace(base, dir=os.path.abspath(directory)))
