"""`gangd families [--json]`: every family gangd has facts for, and how far each is proven.

One row per family: its ROM protocol (spsdk's database), whether it needs a flashloader, its
memories with their geometry (the FlexSPI windows and the one the ROM boots from, or the internal
flash's sector and page), its secure-boot kind and whether gangd models it, and how far it is
proven (config/facts.py PROVEN; "disputed" names the fact whose sources disagree). The facts come
from gangd/config/family_facts/*.toml.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gangd.config.facts import PROVEN, all_facts
from gangd.config.family import FamilyInfo, load_family
from gangd.config.flexspi import fallback_codes, frequency_table, has_clock_table


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("families", help="list the MCU families gangd supports and how far each is proven")
    parser.add_argument("--json", action="store_true", help="one JSON array instead of the table")
    parser.set_defaults(func=families_command)


def describe(family: FamilyInfo) -> dict[str, Any]:
    """One family as `gangd families --json` gives it."""
    facts = family.facts
    assert facts is not None
    memories: list[dict[str, Any]] = []
    for window in facts.windows:
        memories.append(
            {
                "memory": "flexspi-nor",
                "memory_id": 9,
                "window": window.name,
                "start": window.start,
                "size": window.size,
                "boot": window.name == facts.boot_window,
                "geometry": "asked of the board (ExternalMemoryAttributes)",
            }
        )
    if facts.internal_flash is not None and family.internal_flash is not None:
        memories.append(
            {
                "memory": "internal-flash",
                "memory_id": 0,
                "window": family.internal_flash.name,
                "start": family.internal_flash.start,
                "size": family.internal_flash.size,
                "boot": True,
                "sector_size": facts.internal_flash.sector_size,
                "page_size": facts.internal_flash.page_size,
            }
        )
    ladder: list[int] = []
    if has_clock_table(family.name):
        table = frequency_table(family.name)
        ladder = [table[code] for code in [7, *fallback_codes(family.name, 7)]]
    return {
        "family": family.name,
        "rom_protocol": family.rom_protocol,
        "needs_flashloader": family.rom_protocol == "sdp",
        "flashloader": (
            {"load_address": facts.flashloader_load, "jump_address": facts.flashloader_jump}
            if facts.flashloader_load is not None
            else None
        ),
        "memories": memories,
        "clock_ladder_mhz": ladder,
        "secure_boot": facts.secure_boot,
        "secure_boot_supported": facts.secure_boot_modelled,
        "proven": facts.proven,
        "disputed": facts.disputed,
        "facts_file": facts.file,
    }


def _memories(row: dict[str, Any]) -> str:
    parts = []
    for memory in row["memories"]:
        if memory["memory"] == "internal-flash":
            parts.append(f"flash 0x{memory['start']:x} sector {memory['sector_size']} page {memory['page_size']}")
        else:
            boot = " (boot)" if memory["boot"] else ""
            parts.append(f"{memory['window']} 0x{memory['start']:08x}{boot}")
    return ", ".join(parts)


def families_command(args: argparse.Namespace) -> int:
    rows = [describe(load_family(name)) for name in sorted(all_facts())]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("family", "ROM", "flashloader", "memories", "clock ladder (MHz)", "secure boot", "proven")
    table = [header]
    for row in rows:
        supported = row["secure_boot_supported"] or row["secure_boot"] == "none"
        secure = row["secure_boot"] + ("" if supported else " (not supported yet)")
        table.append(
            (
                row["family"],
                row["rom_protocol"],
                "yes" if row["needs_flashloader"] else "no",
                _memories(row),
                " > ".join(str(mhz) for mhz in row["clock_ladder_mhz"]) or "-",
                secure,
                PROVEN[row["proven"]] + "".join(f" ({fact}: see {row['facts_file']})" for fact in row["disputed"]),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0
