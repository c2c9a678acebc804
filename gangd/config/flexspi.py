"""FlexSPI NOR option words and flash clocks, as NXP's flashloader reads them.

`configure-memory 9 ADDR` takes one or more option words from RAM. Their layout is mcu-boot's
`serial_nor_config_option_t` (`src/drivers/flexspi_nor/flexspi_nor_flash.h`), the same as spsdk's
`data/common/memcfg/opt_word_flexspi_nor.json`. Both gangd (to lower the read clock after a
diagnosis) and the simulator (to behave like the driver) read them through this module.

The max-frequency field is a per-chip code: each mcu-boot target's `target_config.h` enumerates it
(kFlexSpiSerialClk_*) and its clock configuration maps it to a FlexSPI serial clock; the three tables
(RT1021, RT1062, RT1176 types) and which family uses which are family facts (`facts.py`,
`family_facts/flexspi_clocks.toml`).
The driver erases and programs at the safe clock (code 1, ~30 MHz) and reads at the code's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from gangd.config.facts import clock_tables, facts_for

OPTION_TAG = 0xC
FCFB_TAG = 0x42464346  # "FCFB": a complete 512-byte configuration block instead of option words
SAFE_CODE = 1  # ~30 MHz: what mcu-boot's driver uses for the SFDP probe, erase and program

# Which copy of mcu-boot's frequency table a family's flashloader uses is a family fact
# (family_facts/flexspi_clocks.toml, named by each family group's `clock_table`).
# A lower clock is only worth a diagnosis read when it is clearly lower: steps of less than 20 %
# (133 -> 120, 80 -> 75, 60 -> 50) are skipped. On RT1020 this gives 133 -> 100 -> 80 -> 60 -> 30; on
# RT1176 the same clocks by its own codes (7 -> 5 -> 4 -> 3 -> 1); on RT1062 120 -> 80 -> 60 -> 30.
_MIN_STEP = 0.8
# Families without a FlexSPI clock table in their facts (no FlexSPI, or no facts): the RT1021 codes,
# our choice so that a trace or record of such a board still names a clock; the ladder of a family
# without a table is empty (fallback_codes), so no diagnosis ever steps down a guessed ladder.
_DEFAULT_TABLE = "rt1021"


def has_clock_table(family: str) -> bool:
    """The family's facts name its FlexSPI NOR driver's frequency table."""
    facts = facts_for(family)
    return facts is not None and facts.clocks is not None


def frequency_table(family: str) -> dict[int, int]:
    """max_freq code -> MHz for a family, from its facts (family_facts/flexspi_clocks.toml)."""
    facts = facts_for(family)
    if facts is not None and facts.clocks is not None:
        return facts.clocks.as_dict()
    return clock_tables()[_DEFAULT_TABLE].as_dict()


def clock_mhz(family: str, code: int) -> int:
    """The serial clock a max_freq code selects; a code past the family's table selects the safe clock."""
    return frequency_table(family).get(code, frequency_table(family)[SAFE_CODE])


def fallback_codes(family: str, code: int) -> list[int]:
    """The lower codes worth trying after `code` reads unreliably, fastest first, ending at the
    safe clock; none for a family without a FlexSPI clock table."""
    if not has_clock_table(family):
        return []
    table = frequency_table(family)
    ladder, last = [], table.get(code, table[SAFE_CODE])
    for candidate, mhz in sorted(table.items(), key=lambda item: -item[1]):
        if candidate == 0 or mhz >= last:
            continue
        if mhz <= last * _MIN_STEP or candidate == SAFE_CODE:
            ladder.append(candidate)
            last = mhz
    if ladder and table[ladder[-1]] != table[SAFE_CODE]:
        ladder.append(SAFE_CODE)
    return ladder


@dataclass(frozen=True)
class NorOption0:
    """option0, lowest bits first (mcu-boot `serial_nor_config_option_t.option0`)."""

    max_freq: int  # 3:0
    misc_mode: int  # 7:4   0 none, 1 0-4-4, 3 data order swapped, 5 internal loopback
    quad_mode_setting: int  # 11:8
    cmd_pads: int  # 15:12 0 = 1 pad
    query_pads: int  # 19:16 0 = 1 pad
    device_type: int  # 23:20 0 = read SFDP, SDR
    option_size: int  # 27:24 extra words
    tag: int  # 31:28 must be 0xC

    @classmethod
    def parse(cls, word: int) -> NorOption0:
        return cls(
            max_freq=word & 0xF,
            misc_mode=(word >> 4) & 0xF,
            quad_mode_setting=(word >> 8) & 0xF,
            cmd_pads=(word >> 12) & 0xF,
            query_pads=(word >> 16) & 0xF,
            device_type=(word >> 20) & 0xF,
            option_size=(word >> 24) & 0xF,
            tag=(word >> 28) & 0xF,
        )


@dataclass(frozen=True)
class NorOption1:
    """option1, present when option_size >= 1."""

    dummy_cycles: int  # 7:0
    status_override: int  # 15:8
    pinmux_group: int  # 19:16
    dqs_pinmux_group: int  # 23:20
    drive_strength: int  # 27:24
    flash_connection: int  # 31:28 0 port A, 1 parallel, 2 port B, 3 both

    @classmethod
    def parse(cls, word: int) -> NorOption1:
        return cls(
            dummy_cycles=word & 0xFF,
            status_override=(word >> 8) & 0xFF,
            pinmux_group=(word >> 16) & 0xF,
            dqs_pinmux_group=(word >> 20) & 0xF,
            drive_strength=(word >> 24) & 0xF,
            flash_connection=(word >> 28) & 0xF,
        )


def is_option_words(option_words: tuple[int, ...]) -> bool:
    """Option words (tag 0xC) rather than a complete FCFB block."""
    return bool(option_words) and option_words[0] >> 28 == OPTION_TAG


def with_max_freq(option_words: tuple[int, ...], code: int) -> tuple[int, ...]:
    """The same option words with option0's frequency field replaced."""
    if not is_option_words(option_words):
        return option_words
    return ((option_words[0] & ~0xF) | (code & 0xF), *option_words[1:])


def max_freq_code(option_words: tuple[int, ...]) -> int | None:
    """The frequency code of option words; None for an FCFB block (its clock is inside it)."""
    return option_words[0] & 0xF if is_option_words(option_words) else None
