"""One simulated board: its memories, fuses, stage, faults and a log of every command it saw.

The board is passive state plus the two protocol engines (`rom.py`, `flashloader.py`); who
carries its packets (a HID socket through the simulated hub, or a pseudo-terminal) is decided by
`hub.py` and `uart.py`. What the board does when it leaves the bus (jump, reset, unplug) is said
by the exceptions below, which those carriers act on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gangd.config.family import FamilyInfo, MemoryRegion, UsbIds
from gangd.sim.faults import CombinedFaults, FaultPlan
from gangd.sim.hab import SRK_HASH_INDEX, Hab, other_key_hash
from gangd.sim.internal_flash import InternalFlash
from gangd.sim.loop import Flag
from gangd.sim.memory import OtpFuses, SparseMemory
from gangd.sim.nor_flash import DEFAULT_PART, PARTS, FlashPart, NorFlash
from gangd.sim.timing import BoardClock, TimingModel

ROM = "rom"
FLASHLOADER = "flashloader"
STAGES = (ROM, FLASHLOADER)
OLD_APPLICATION_SIZE = 64 * 1024  # what a write-protected board's flash holds when it arrives


class LeaveStage(Exception):
    """The board drops off the bus: after a jump it comes back as the flashloader, after a reset
    as the ROM, unless `reappear` is False (the flashloader never starts)."""

    def __init__(self, next_stage: str, reappear: bool = True, delay_s: float | None = None) -> None:
        super().__init__(next_stage)
        self.next_stage = next_stage
        self.reappear = reappear
        self.delay_s = delay_s  # off the bus this long (None: the timing model's re-enumeration)


class Unplugged(Exception):
    """The board was physically removed (by the operator or by a fault) mid-operation."""


@dataclass(frozen=True)
class CommandRecord:
    at: float
    stage: str
    command: str
    args: tuple[int, ...]
    status: int | None  # None: the board never answered


@dataclass
class FlashConfig:
    """What a successful configure-memory 9 left in the flashloader's FlexSPI driver."""

    region: MemoryRegion
    part: FlashPart
    read_mhz: int  # the clock reads run at (option0's max_freq); erase and program use the safe one
    option_words: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return self.part.size

    @property
    def page_size(self) -> int:
        return self.part.page_size

    @property
    def sector_size(self) -> int:
        return self.part.sector_size

    @property
    def block_size(self) -> int:
        return self.part.block_size


@dataclass
class BoardSpec:
    """Everything that makes one board different from the next one off the reel."""

    family: FamilyInfo
    serial: str
    uuid: int
    stage: str = ROM
    hab_closed: bool = False
    flash_part: str = DEFAULT_PART
    faults: tuple[str, ...] = ()
    seed: int | None = None
    timing: TimingModel = field(default_factory=TimingModel)

    @property
    def nor_size(self) -> int:
        return PARTS[self.flash_part].size


class SimBoard:
    def __init__(self, spec: BoardSpec, port_faults: FaultPlan | None = None) -> None:
        self.spec = spec
        self.family = spec.family
        self.serial = spec.serial
        self.uuid = spec.uuid
        self.stage = spec.stage if spec.family.rom_protocol == "sdp" else FLASHLOADER
        self.own_faults = FaultPlan(spec.faults, seed=spec.seed)
        self.faults = CombinedFaults(self.own_faults, port_faults)
        slowdown = 1.0
        for rule in self.faults.of_kind("slow-flash"):
            slowdown *= rule.factor
        self.unplugged = Flag()  # an Event that also wakes the board where it waits on a BoardLoop
        self.clock = BoardClock(spec.timing.scaled(flash_slowdown=slowdown), self.unplugged)
        self.ram = SparseMemory(0x00)
        self.flash = self._make_flash()
        region = spec.family.internal_flash
        self.internal = InternalFlash(region, spec.family) if region is not None else None
        self.plugs = 0  # times the board was plugged in; every plug after the first is a power-up
        self.otp = OtpFuses(max((f.index for f in spec.family.fuses), default=127) + 1)
        self.flash_config: FlashConfig | None = None
        self.nor_driver: Any = None  # the running flashloader's FlexSPI driver (flexspi_nor.py)
        self.reserved: tuple[int, int] | None = None  # RAM the running flashloader occupies
        self.log: list[CommandRecord] = []
        self.sdp_error = 0  # ROM's last error, read back by error-status
        self.hung = False  # a wedged board answers nothing until it is power-cycled
        self.power_cycles = 0
        # Called on the board's thread when an efuse-program-once is about to burn a word (its
        # index), before the burn's time passes and before the reply: a test cancels gangd exactly
        # there and so proves the cancel arrived mid-burn. A hook that blocks holds the burn.
        self.burn_starting: Callable[[int], None] = lambda index: None
        self.first_enumerated_at: float | None = None  # monotonic time of its first add event
        self.first_command_at: float | None = None  # monotonic time its first command arrived
        self.hab = Hab(self)  # open or closed from the fuses (sim/hab.py)
        self._entered = threading.Condition()  # notified on every enter(): tests wait on it
        self._burn_identity()
        self._apply_otp_faults()

    def _make_flash(self) -> NorFlash:
        max_read_mhz = None
        for rule in self.faults.of_kind("marginal-read"):
            max_read_mhz = rule.max_mhz
        protection = None
        for rule in self.faults.of_kind("write-protect"):
            protection = rule.persist
        flash = NorFlash(PARTS[self.spec.flash_part], max_read_mhz, None, seed=(self.spec.seed, self.serial))
        if protection is not None:
            # An application that protects its flash has first written itself there.
            flash.program(0, random.Random(f"app:{self.serial}").randbytes(OLD_APPLICATION_SIZE))
            flash.protection, flash.block_protect = protection, True
        return flash

    # --- identity -------------------------------------------------------------------------

    def _burn_identity(self) -> None:
        """The unique id the flashloader reports also sits in the fuses, as on real parts."""
        names = {f.name: f.index for f in self.family.fuses}
        for name, word in (("LOT_NO_ENC1", self.uuid >> 32), ("LOT_NO_ENC0_WAFER_COORD", self.uuid)):
            if name in names:
                self.otp.preset(names[name], word & 0xFFFFFFFF, locked=True)

    def _apply_otp_faults(self) -> None:
        for rule in self.faults.of_kind("otp"):
            index = rule.index if rule.index is not None else self.family.fuse(rule.fuse or "").index
            self.otp.preset(index, rule.value, rule.locked)
        if any(rule.mode == "wrong-srk" for rule in self.faults.of_kind("hab")):
            for i, word in enumerate(other_key_hash(self.serial)):  # provisioned for someone else's keys
                self.otp.preset(SRK_HASH_INDEX + i, word)

    @property
    def hab_closed(self) -> bool:
        return self.hab.closed

    @property
    def usb_ids(self) -> UsbIds:
        ids = self.family.rom_usb if self.stage == ROM else self.family.flashloader_usb
        if not ids:  # families whose ROM is itself an MCU bootloader have no separate flashloader
            ids = self.family.rom_usb
        return ids[0]

    # --- state changes ----------------------------------------------------------------------

    def command_arrived(self) -> None:
        if self.first_command_at is None:
            self.first_command_at = time.monotonic()

    def record(self, command: str, args: tuple[int, ...], status: int | None) -> None:
        self.log.append(CommandRecord(time.monotonic(), self.stage, command, args, status))

    def commands(self, name: str | None = None) -> list[CommandRecord]:
        return [rec for rec in self.log if name is None or rec.command == name]

    def enter(self, stage: str) -> None:
        """Power-on or re-enumeration into `stage`. A reset loses RAM and the memory config."""
        if stage == ROM:
            self.ram.clear()
            self.reserved = None
            self.hab.boot_report = None
        self.flash_config = None
        self.nor_driver = None
        self.hung = False
        with self._entered:
            self.stage = stage
            self._entered.notify_all()

    def wait_for_stage(self, stage: str, timeout: float) -> bool:
        """Until the board is in `stage` (True), or `timeout` seconds pass (False)."""
        with self._entered:
            return self._entered.wait_for(lambda: self.stage == stage, timeout)

    def power_up(self) -> None:
        """Plugged in (or its port's power restored). The first plug is not a power-up the line
        sees: a board arrives in whatever state its previous life left it (a flash protected by an
        application, say). Every later one boots the ROM afresh and loses the flash's volatile
        state."""
        if self.plugs:
            self.unplugged.clear()
            self.flash.power_off()
            self.enter(ROM)
        self.plugs += 1

    @property
    def flexspi_window(self) -> MemoryRegion | None:
        return self.family.flexspi

    def flash_image(self, address: int, length: int) -> bytes:
        """What the flash holds at an address (internal flash or the FlexSPI NOR), for tests:
        independent of any protocol."""
        if self.internal is not None and self.internal.region.contains(address, length):
            return self.internal.read(address, length)
        window = self.flexspi_window
        start = window.start if window is not None else 0
        return self.flash.contents(address - start, length)
