"""gangd's family facts (gangd/config/family_facts/*.toml) checked against spsdk's device database
where both speak: a fact that disagrees with spsdk without saying so (and with its source) fails.
"""

from __future__ import annotations

import json

import pytest

from gangd.cli import main
from gangd.config.facts import all_facts, clock_tables
from gangd.config.family import load_family
from gangd.config.flexspi import fallback_codes, frequency_table

FACTS = all_facts()


def test_there_are_facts_for_every_family_group_of_the_issue():
    for family in ("mimxrt1010", "mimxrt1020", "mimxrt1050", "mimxrt1060", "mimxrt1064", "mimxrt1176"):
        assert FACTS[family].boot is not None
    for family in ("lpc55s69", "lpc55s16", "mcxn947", "mcxa153"):
        assert FACTS[family].internal_flash is not None


def test_the_internal_flash_geometry_is_what_the_roms_answer():
    """FlashSectorSize and FlashPageSize: LPC55S69 (spsdk examples/blhost/blhost.ipynb), MCX N947 and
    MCX A153 (their SDK features headers)."""
    geometry = {
        name: (FACTS[name].internal_flash.sector_size, FACTS[name].internal_flash.page_size)
        for name in FACTS
        if FACTS[name].internal_flash
    }  # type: ignore[union-attr]
    assert geometry["lpc55s69"] == geometry["lpc55s16"] == (32 * 1024, 512)
    assert geometry["mcxn947"] == geometry["mcxa153"] == (8 * 1024, 128)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_facts_agree_with_spsdk_or_say_where_they_differ(name):
    facts = FACTS[name]
    family = load_family(name)  # raises for a family spsdk does not know
    assert facts.rom_protocol == family.rom_protocol
    for key in ("windows", "clock_table", "flashloader", "internal_flash", "secure_boot"):
        present = {
            "windows": facts.windows,
            "clock_table": facts.clocks,
            "flashloader": facts.flashloader_load,
            "internal_flash": facts.internal_flash,
            "secure_boot": facts.secure_boot,
        }[key]
        if present:
            assert facts.sources.get(key), f"{facts.file}: {name}'s {key} has no source"
    # Windows: each one is a FlexSPI region of spsdk's memory map, or the file says why not.
    spsdk_windows = {(r.start, r.size) for r in family.regions if r.external and r.name.startswith("flexspi")}
    agree = all((w.start, w.size) in spsdk_windows for w in facts.windows)
    if "windows" in facts.spsdk_differs:
        assert not agree, f"{facts.file}: {name}: spsdk_differs.windows is stale, spsdk now agrees"
    else:
        assert agree, f"{facts.file}: {name}: windows {facts.windows} not in spsdk's map {spsdk_windows}"
    # The boot flash: only where the ROM needs a flashloader; internal flash where spsdk maps one.
    if facts.boot is not None:
        assert family.rom_protocol == "sdp" and family.flashloader_usb
        assert family.flexspi is not None and family.flexspi.start == facts.boot.start
    if facts.internal_flash is not None:
        flash = family.internal_flash
        assert flash is not None and flash.size % facts.internal_flash.page_size == 0
        assert facts.internal_flash.sector_size % facts.internal_flash.page_size == 0
        if flash.size % facts.internal_flash.sector_size:
            assert "ends mid-sector" in facts.sources["internal_flash"], f"{name}: flash not in whole sectors"
    # The flashloader convention: inside one RAM region of spsdk's map, jump at or after the load.
    if facts.flashloader_load is not None:
        assert facts.flashloader_jump is not None and facts.flashloader_load <= facts.flashloader_jump
        assert any(r.contains(facts.flashloader_load, 0x8000) for r in family.ram_regions)
    # HAB4 families: spsdk's fuse map has the words gangd's secure-boot stages burn.
    if facts.secure_boot == "hab4" and facts.secure_boot_modelled:
        assert len(family.fuse_group("SRK_HASH")) == 8


def test_the_rt1060_boot_window_is_where_its_reference_manual_maps_flexspi():
    """spsdk's mimxrt1060 database carries the RT1170 map; the facts say so and win."""
    family = load_family("mimxrt1060")
    assert "flexspi1" in {r.name for r in family.regions}  # spsdk's own (wrong) window at 0x30000000
    assert family.flexspi is not None and family.flexspi.start == 0x6000_0000
    assert load_family("mimxrt1064").flexspi.start == 0x7000_0000  # type: ignore[union-attr]
    assert load_family("mimxrt1176").flexspi.start == 0x3000_0000  # type: ignore[union-attr]


def test_every_clock_table_is_a_4_bit_code_with_the_safe_clock_at_codes_0_and_1():
    for table in clock_tables().values():
        assert 10 <= len(table.mhz) <= 16 and table.mhz[0] == table.mhz[1] == 30 and table.source


def test_the_clock_tables_are_mcu_boots_per_soc_enums():
    """target_config.h kFlexSpiSerialClk_* of each mcu-boot target (family_facts/flexspi_clocks.toml)."""
    assert frequency_table("mimxrt1010") == frequency_table("mimxrt1020")  # RT1011 uses the RT1021 enum
    assert frequency_table("mimxrt1060")[10] == 200 and frequency_table("mimxrt1064")[8] == 133
    rt1176 = frequency_table("mimxrt1176")
    assert [rt1176[code] for code in range(1, 10)] == [30, 50, 60, 80, 100, 120, 133, 166, 200]  # no 75


def ladder(family: str) -> list[tuple[int, int]]:
    table = frequency_table(family)
    return [(code, table[code]) for code in [7, *fallback_codes(family, 7)]]


def test_the_rt1020_ladder_is_unchanged_and_other_families_step_down_their_own():
    rt1020 = [(7, 133), (6, 100), (5, 80), (3, 60), (1, 30)]
    assert ladder("mimxrt1020") == ladder("mimxrt1010") == rt1020
    assert ladder("mimxrt1060") == ladder("mimxrt1064") == [(7, 120), (5, 80), (3, 60), (1, 30)]
    # The RT1176 steps down the RT1020's clocks by its own codes: RT1020's code 6 is 120 MHz there.
    assert ladder("mimxrt1176") == [(7, 133), (5, 100), (4, 80), (3, 60), (1, 30)]
    assert fallback_codes("mcxn947", 7) == []  # internal flash: no FlexSPI clock to lower


def test_families_lists_each_family_with_its_geometry_and_proof(capsys):
    assert main(["families", "--json"]) == 0
    rows = {row["family"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(FACTS)
    mcxn = rows["mcxn947"]
    assert mcxn["needs_flashloader"] is False
    assert mcxn["memories"][0]["sector_size"] == 8192 and mcxn["memories"][0]["page_size"] == 128
    boot = [m for m in rows["mimxrt1064"]["memories"] if m["boot"]]
    assert [(m["window"], m["start"]) for m in boot] == [("flexspi2", 0x7000_0000)]
    assert rows["mimxrt1176"]["secure_boot_supported"] is False
    assert {row["proven"] for row in rows.values()} <= {"simulated", "disputed", "traced", "unknown"}
    assert main(["families"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["family", "ROM"] and len(table) == len(FACTS) + 1


def test_the_rt1170_rom_protocol_is_shown_as_disputed_not_as_proven(capsys):
    """spsdk says 'sdp'; NXP's MfgTools and MCUBootUtility speak the MCU bootloader to 1FC9:013D.
    gangd keeps spsdk's label and says so instead of listing the family as simulated from sources."""
    facts = FACTS["mimxrt1176"]
    assert facts.rom_protocol == "sdp" and facts.proven == "disputed"
    assert "load-image" in facts.disputed["rom_protocol"] and "spsdk" in facts.disputed["rom_protocol"]
    assert not any(FACTS[name].disputed for name in FACTS if not name.startswith("mimxrt117"))
    assert main(["families", "--json"]) == 0
    rows = {row["family"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mimxrt1176"]["proven"] == "disputed" and set(rows["mimxrt1176"]["disputed"]) == {"rom_protocol"}
    assert main(["families"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mimxrt1176 "))
    assert "simulated on a disputed fact (rom_protocol: see rt1170_1176.toml)" in line
    assert "simulated from facts with sources" not in line
