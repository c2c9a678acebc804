"""What gangd knows about an MCU family: spsdk's device database, then gangd's family facts.

USB ids of the ROM and flashloader stages, the memory map and the OTP fuse names come from
`spsdk/data/devices/<family>`. What the database does not say (which FlexSPI window the ROM boots
from, the FlexSPI clock codes, the internal flash's sector and page), or says differently from the
reference manual, comes from gangd's facts files (`facts.py`, data with sources). Nothing
family-specific is written by hand in code.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spsdk.exceptions import SPSDKError
from spsdk.utils.family import FamilyRevision, get_device, get_families

from gangd.core.events import PortEvent

if TYPE_CHECKING:  # facts.py reads this module's MemoryRegion; load_family imports it when it runs
    from gangd.config.facts import FamilyFacts


class UnknownFamilyError(ValueError):
    """The name is not a family in spsdk's device database."""


@dataclass(frozen=True)
class UsbIds:
    vid: int
    pid: int

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    start: int
    size: int
    external: bool

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.start + self.size

    def contains(self, address: int, length: int = 1) -> bool:
        return self.start <= address and address + length <= self.end

    @property
    def is_internal_flash(self) -> bool:
        """On-chip flash (spsdk names it `internal-flash*`; its IFR pages too): not RAM."""
        return not self.external and ("flash" in self.name or self.name.startswith("ifr"))


@dataclass(frozen=True)
class Fuse:
    name: str
    index: int


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    rom_protocol: str  # "sdp" for i.MX RT ROMs, "mboot" where the ROM itself is an MCU bootloader
    rom_usb: tuple[UsbIds, ...]
    flashloader_usb: tuple[UsbIds, ...]
    regions: tuple[MemoryRegion, ...]
    fuses: tuple[Fuse, ...]
    facts: FamilyFacts | None = None  # None: a family gangd has no facts for (check-config refuses it)

    @property
    def ram_regions(self) -> tuple[MemoryRegion, ...]:
        return tuple(r for r in self.regions if not r.external and not r.is_internal_flash)

    @property
    def internal_flash(self) -> MemoryRegion | None:
        """The on-chip flash as the bootloader addresses it (the non-secure alias where there are two)."""
        flashes = [r for r in self.regions if r.is_internal_flash and not r.name.startswith("ifr")]
        return next((r for r in flashes if r.name.endswith("_ns")), flashes[0] if flashes else None)

    @property
    def flexspi(self) -> MemoryRegion | None:
        """The FlexSPI window the ROM boots from, where configure-memory 9 maps the boot flash.

        From the family's facts: spsdk's memory map lists the windows but not which one the ROM
        boots from, and for some families lists them wrongly (mimxrt1060: the RT1170 map; see
        family_facts/rt1040_1064.toml). Without facts: spsdk's first FlexSPI window, non-secure where
        there are two."""
        boot = self.facts.boot if self.facts is not None else None
        if boot is not None:
            return boot
        windows = [r for r in self.regions if r.external and r.name.startswith("flexspi")]
        return next((r for r in windows if not r.name.endswith("_s")), windows[0] if windows else None)

    def flexspi_window_at(self, address: int, length: int = 1) -> MemoryRegion | None:
        """The FlexSPI window (per the facts) holding a range, boot window or not."""
        return self.facts.window_at(address, length) if self.facts is not None else None

    def region(self, name: str) -> MemoryRegion:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(f"{self.name} has no memory region {name!r}")

    def region_at(self, address: int, length: int = 1) -> MemoryRegion | None:
        for region in self.regions:
            if region.contains(address, length):
                return region
        return None

    def fuse(self, name: str) -> Fuse:
        """A fuse word by its spsdk name or id (`SRK_HASH[31:0]`, `fuse31`), case-insensitive."""
        key = name.upper()
        for fuse in self.fuses:
            if fuse.name.upper() == key:
                return fuse
        raise KeyError(f"{self.name} has no fuse named {name!r}")

    def fuse_group(self, name: str) -> tuple[Fuse, ...]:
        """Fuse words that together form one wide value, most significant first.

        spsdk names the words of a wide fuse `SRK_HASH[255:224]` … `SRK_HASH[31:0]`; asking for
        `SRK_HASH` gives all of them ordered from the high word down. A plain word name gives
        that word alone.
        """
        try:
            return (self.fuse(name),)
        except KeyError:
            pass
        pattern = re.compile(re.escape(name.upper()) + r"\[(\d+):(\d+)\]$")
        words = []
        for fuse in self.fuses:
            match = pattern.match(fuse.name.upper())
            if match:
                words.append((int(match.group(1)), fuse))
        if not words:
            raise KeyError(f"{self.name} has no fuse named {name!r}")
        return tuple(fuse for _, fuse in sorted(words, key=lambda pair: -pair[0]))

    def is_rom(self, ids: UsbIds) -> bool:
        return ids in self.rom_usb

    def is_flashloader(self, ids: UsbIds) -> bool:
        return ids in self.flashloader_usb


@functools.cache
def family_names() -> tuple[str, ...]:
    return tuple(sorted({fam.name for fam in get_families()}))


@functools.cache
def load_family(name: str) -> FamilyInfo:
    """Read one family from spsdk's database, with gangd's facts about it. Raises
    UnknownFamilyError for a bad name."""
    from gangd.config.facts import facts_for

    try:
        device = get_device(FamilyRevision(name))
    except (SPSDKError, KeyError, ValueError) as exc:
        raise UnknownFamilyError(f"unknown family {name!r}: not in spsdk's device database") from exc
    regions = []
    for block_name, block in device.info.memory_map._mem_map.items():
        try:
            regions.append(MemoryRegion(block_name, block.base_address, block.size, block.external))
        except (KeyError, ValueError):
            continue  # a few database entries describe a block without a size: not addressable here
    fuses: tuple[Fuse, ...] = ()
    try:
        from spsdk.fuses.fuses import Fuses

        registers = Fuses.get_init_regs(FamilyRevision(name))
        fuses = tuple(Fuse(reg.name, reg.otp_index) for reg in registers if reg.otp_index is not None)
    except SPSDKError:
        # Families without a fuse description simply have no named fuses.
        pass
    rom, loader = _usb_ids(device.info.isp)
    return FamilyInfo(
        name=device.name,
        rom_protocol=(device.info.isp.rom.protocol or "") if device.info.isp.rom else "",
        rom_usb=rom,
        flashloader_usb=loader,
        regions=tuple(regions),
        fuses=fuses,
        facts=facts_for(device.name),
    )


def _usb_ids(isp) -> tuple[tuple[UsbIds, ...], tuple[UsbIds, ...]]:
    """(ROM ids, flashloader ids) from spsdk's ISP description; entries without both ids are skipped."""

    def ids(stage) -> tuple[UsbIds, ...]:
        if not stage:
            return ()
        return tuple(UsbIds(u.vid, u.pid) for u in stage.usb_ids if u.vid is not None and u.pid is not None)

    return ids(isp.rom), ids(isp.flashloader)


@functools.cache
def isp_usb_ids(name: str) -> tuple[tuple[UsbIds, ...], tuple[UsbIds, ...]]:
    """(ROM ids, flashloader ids) of a family, without reading its memory map and fuses."""
    return _usb_ids(get_device(FamilyRevision(name)).info.isp)


ROM = "rom"
FLASHLOADER = "flashloader"


def stage_of(family: FamilyInfo, event: PortEvent) -> str | None:
    """Which stage of `family` the device an event names is in, by its USB ids (None: not ours)."""
    ids = UsbIds(event.vid, event.pid)
    if family.is_flashloader(ids):
        return FLASHLOADER
    if family.is_rom(ids):
        return ROM
    return None
