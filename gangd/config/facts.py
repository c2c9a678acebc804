"""gangd's own facts about each MCU family: what spsdk's device database does not say, or says
differently from the part's reference manual or NXP's mcu-boot source.

The facts are data, one TOML file per family group in `family_facts/` beside this module (shipped in the
wheel), each fact with its source (`family_facts/README.md`). spsdk's database stays the first source for
USB ids, the memory map and fuse names (`family.py`); what the board answers over get-property beats
both (the plan says which one it used). tests/config/test_family_facts.py checks the files against
spsdk's database where both speak.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from gangd.config.family import MemoryRegion

FACTS_PACKAGE = "gangd.config"
FACTS_DIR = "family_facts"
CLOCKS_FILE = "flexspi_clocks.toml"

PROVEN = {
    "simulated": "simulated from facts with sources",
    # Simulated, but on a fact gangd keeps while its sources disagree (the group's `disputed` table
    # says which and why): a pass in the simulator does not say the real part works the same way.
    "disputed": "simulated on a disputed fact",
    "traced": "traced from a real board",
    "unknown": "unknown",
}
SECURE_BOOT_KINDS = ("hab4", "lpc55-secure-boot", "mcx-secure-boot", "none")


@dataclass(frozen=True)
class ClockTable:
    """A copy of mcu-boot's per-SoC FlexSPI frequency enum: MHz by option0 max_freq code (4 bits)."""

    name: str
    mhz: tuple[int, ...]
    source: str

    def as_dict(self) -> dict[int, int]:
        return dict(enumerate(self.mhz))


@dataclass(frozen=True)
class InternalFlashFacts:
    sector_size: int  # erase unit (the ROM's FlashSectorSize property)
    page_size: int  # program unit: a write must start on one


@dataclass(frozen=True)
class FamilyFacts:
    family: str
    file: str  # the facts file it came from, for messages
    rom_protocol: str
    secure_boot: str
    secure_boot_modelled: bool  # gangd's secure-boot stages know this family's fuse map
    proven: str
    windows: tuple[MemoryRegion, ...] = ()  # the FlexSPI windows, external memory
    boot_window: str | None = None  # the window the ROM boots from
    clocks: ClockTable | None = None
    flashloader_load: int | None = None
    flashloader_jump: int | None = None
    internal_flash: InternalFlashFacts | None = None
    sources: dict[str, str] = field(default_factory=dict)
    spsdk_differs: dict[str, str] = field(default_factory=dict)
    disputed: dict[str, str] = field(default_factory=dict)  # fact -> how its sources disagree

    @property
    def boot(self) -> MemoryRegion | None:
        return next((w for w in self.windows if w.name == self.boot_window), None)

    def window_at(self, address: int, length: int = 1) -> MemoryRegion | None:
        return next((w for w in self.windows if w.contains(address, length)), None)


class FactsError(ValueError):
    """A facts file is malformed (a packaging bug, caught by the test of the files)."""


def _folder() -> Any:
    return resources.files(FACTS_PACKAGE).joinpath(FACTS_DIR)


@functools.cache
def clock_tables() -> dict[str, ClockTable]:
    """The copies of mcu-boot's FlexSPI frequency table, by name (family_facts/flexspi_clocks.toml)."""
    raw = tomllib.loads(_folder().joinpath(CLOCKS_FILE).read_text())
    tables = {
        name: ClockTable(name, tuple(int(m) for m in table["mhz"]), str(table["source"]))
        for name, table in raw.get("clock_tables", {}).items()
    }
    for table in tables.values():
        # Code 0 keeps the safe clock (code 1); option0's max_freq field is 4 bits wide.
        if not 2 <= len(table.mhz) <= 16 or table.mhz[0] != table.mhz[1]:
            raise FactsError(f"{CLOCKS_FILE}: {table.name}: give codes 0..15 at most, code 0 as code 1")
    return tables


@functools.cache
def all_facts() -> dict[str, FamilyFacts]:
    """Every family gangd has facts for, by spsdk family name."""
    folder = _folder()
    clocks = clock_tables()
    facts: dict[str, FamilyFacts] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or entry.name == CLOCKS_FILE:
            continue
        for group in tomllib.loads(entry.read_text()).get("group", []):
            for name in group["families"]:
                if name in facts:
                    raise FactsError(f"{entry.name}: {name} already has facts in {facts[name].file}")
                facts[name] = _family(name, entry.name, group, clocks)
    return facts


def facts_for(family: str) -> FamilyFacts | None:
    return all_facts().get(family)


def _family(name: str, file: str, group: dict[str, Any], clocks: dict[str, ClockTable]) -> FamilyFacts:
    def need_source(key: str) -> None:
        if key in group and key not in group.get("sources", {}):
            raise FactsError(f"{file}: the fact {key!r} of {name} has no source")

    for key in ("windows", "clock_table", "flashloader", "internal_flash", "secure_boot"):
        need_source(key)
    if group["secure_boot"] not in SECURE_BOOT_KINDS:
        raise FactsError(f"{file}: {name}: secure_boot {group['secure_boot']!r} is not one of {SECURE_BOOT_KINDS}")
    if group["proven"] not in PROVEN:
        raise FactsError(f"{file}: {name}: proven {group['proven']!r} is not one of {tuple(PROVEN)}")
    if bool(group.get("disputed")) != (group["proven"] == "disputed"):
        raise FactsError(f"{file}: {name}: proven = 'disputed' goes with a [group.disputed] table saying why")
    table = group.get("clock_table")
    if table is not None and table not in clocks:
        raise FactsError(f"{file}: {name}: no clock table {table!r} in {CLOCKS_FILE}")
    windows = tuple(
        MemoryRegion(w["name"], int(w["start"]), int(w["size"]), external=True) for w in group.get("windows", [])
    )
    boot = group.get("boot_window")
    if boot is not None and boot not in {w.name for w in windows}:
        raise FactsError(f"{file}: {name}: boot_window {boot!r} is not one of its windows")
    loader = group.get("flashloader", {})
    flash = group.get("internal_flash")
    return FamilyFacts(
        family=name,
        file=file,
        rom_protocol=group["rom_protocol"],
        secure_boot=group["secure_boot"],
        secure_boot_modelled=bool(group.get("secure_boot_modelled", False)),
        proven=group["proven"],
        windows=windows,
        boot_window=boot,
        clocks=clocks[table] if table is not None else None,
        flashloader_load=loader.get("load_address"),
        flashloader_jump=loader.get("jump_address"),
        internal_flash=InternalFlashFacts(int(flash["sector_size"]), int(flash["page_size"])) if flash else None,
        sources=dict(group.get("sources", {})),
        spsdk_differs=dict(group.get("spsdk_differs", {})),
        disputed=dict(group.get("disputed", {})),
    )
