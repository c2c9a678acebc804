"""`gangd explain CODE`: what an MCU bootloader status code means and what gangd does about it.

Every status code spsdk knows (`spsdk.mboot.error_codes.StatusCode`) gets an `Explanation`: the
spsdk name, the meaning in plain words, likely causes, remedies, and gangd's recovery class and
action (from `gangd.engine.recovery`). The codes a production line meets (generic, internal flash,
bootloader, memory interface, property store, FlexSPI NOR, OCOTP) are written by hand; every other
code gets an entry derived from its spsdk description, its subsystem and its recovery class.

`--family` adapts the wording where the part matters, e.g. the FlexSPI max-frequency codes of the
option word (on mimxrt1020: 7 = 133 MHz, 6 = 100 MHz, 5 = 80 MHz, 3 = 60 MHz, 1 = 30 MHz).
`one_line()` gives one short sentence to append to a failed board record's reason.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass

from spsdk.mboot.error_codes import StatusCode

from gangd.config.flexspi import fallback_codes, frequency_table
from gangd.engine import recovery
from gangd.engine.hab_explain import HAB_WORDS
from gangd.trace import diverged_at, divergence_reason

DEFAULT_FAMILY = "mimxrt1020"
WIDTH = 100
ONE_LINE_MAX = 160

# Codes that report success: not failures, nothing to recover from.
SUCCESS_TAGS = frozenset({0, 10400, 10600, 52808, 0x5A5A5A5A})
NOT_A_FAILURE = "none"


@dataclass(frozen=True)
class Explanation:
    code: int
    name: str  # spsdk's label, e.g. "FlexSPINORCommandFailure"
    meaning: str
    causes: tuple[str, ...]
    remedies: tuple[str, ...]
    recovery_class: str  # recovery.TRANSIENT / BOARD / PERMANENT, or "none" for a success code
    action: str  # what gangd does, in words


# --- family-dependent wording --------------------------------------------------------------------


def _flexspi_base(family: str) -> int | None:
    try:
        from gangd.config.family import load_family

        info = load_family(family)
    except Exception:
        return None
    for region in info.regions:
        if region.external and region.name.lower().startswith("flexspi"):
            return region.start
    return None


def _context(family: str) -> dict[str, str]:
    """The placeholders the hand-written entries use, worded for `family`."""
    # One frequency table for gangd, the simulator and this text: gangd/flexspi.py.
    table = frequency_table(family)
    ladder = [7, *fallback_codes(family, 7)]
    steps = " -> ".join(f"{c} ({table[c]} MHz)" for c in ladder)
    fast = f"on {family} 0xC0000007 = code 7 = {table[7]} MHz"
    slower = f"option 0xC000000{ladder[1]} = {table[ladder[1]]} MHz"
    base = _flexspi_base(family)
    window = (
        f"on {family} the FlexSPI window starts at {base:#010x}"
        if base is not None
        else (f"see the memory map of {family}")
    )
    return {"family": family, "steps": steps, "fast": fast, "slower": slower, "flexspi": window}


# --- recovery actions in words -------------------------------------------------------------------

CLASS_ACTION = {
    recovery.TRANSIENT: f"diagnose / re-configure the memory and retry the step ({recovery.RECONFIGURE})",
    recovery.BOARD: (
        f"reset the board over USB ({recovery.RESET}), else power-cycle its hub port when allowed "
        f"({recovery.POWER_CYCLE}), else ask the operator to replug ({recovery.REPLUG}); then rerun from the ROM"
    ),
    recovery.PERMANENT: "fail the board at once with the reason",
}


def _class_action(klass: str) -> str:
    return CLASS_ACTION.get(klass, CLASS_ACTION[recovery.BOARD])


# --- hand-written entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """Text with {placeholders} from `_context`."""

    meaning: str
    causes: tuple[str, ...]
    remedies: tuple[str, ...]
    short: str  # one_line() text, after "CODE: "
    action: str | None = None  # replaces the class's action text


_REFLASH_RERUN = "the rerun starts again from the erase step, so no page is written twice"

_HAND: dict[int, _Entry] = {
    0: _Entry(
        "The command succeeded. This is not a failure.",
        ("Nothing went wrong.",),
        ("None needed.",),
        "success, not a failure",
        "nothing to do, not a failure",
    ),
    1: _Entry(
        "The bootloader or one of its drivers failed the command without a more specific code.",
        (
            "The command is not valid in the board's current state (e.g. a memory command before the memory "
            "is configured).",
            "A driver below the command reported a failure it has no dedicated code for.",
        ),
        (
            "Look at which step failed in the board's record and rerun it.",
            "If it repeats on the same command, check that command's arguments in the recipe.",
        ),
        "the bootloader failed the command without a more specific code",
    ),
    2: _Entry(
        "The command tried to write something that is read-only.",
        ("The recipe writes a read-only property, register or memory region.",),
        ("Fix the recipe: do not write that target.",),
        "the command tried to write something read-only: a recipe mistake",
    ),
    3: _Entry(
        "An argument of the command is out of the range the bootloader accepts.",
        ("An address, length, index or memory id in the recipe is outside what this part or flashloader supports.",),
        ("Check the recipe's numbers against the part's memory map and the flashloader's reference manual.",),
        "an argument of the command is out of range: check the recipe's numbers",
    ),
    4: _Entry(
        "The bootloader rejected an argument of the command as invalid.",
        (
            "A wrong memory id (9 is FlexSPI NOR), a malformed option word for configure-memory, or a zero or "
            "odd length in the recipe.",
            "A command sent to the wrong stage (ROM instead of flashloader) that takes other arguments there.",
        ),
        ("Check the recipe's memory id, option words, addresses and lengths.",),
        "the bootloader rejected an argument as invalid: check the recipe",
    ),
    5: _Entry(
        "A driver waited for the hardware to become ready and it never did.",
        (
            "The flash (or another peripheral) stayed busy, e.g. left in a strange state by the application.",
            "A clock or power problem on the board.",
        ),
        (
            "Re-configure the memory and retry; if it repeats, power-cycle the board.",
            "If it follows the board, set it aside for analysis.",
        ),
        "the hardware never became ready: a stuck flash or peripheral",
    ),
    101: _Entry(
        "The internal flash driver got an address or length not aligned to its program/erase unit. (On FlexSPI "
        "NOR the equivalent is 20105.)",
        ("The recipe's address or length is not a multiple of the flash's sector (erase) or phrase (program).",),
        ("Align erase ranges to whole sectors and writes to the program unit; pad the image.",),
        "address or length not aligned to the flash's program/erase unit: a recipe mistake",
    ),
    102: _Entry(
        "The internal flash driver got an address outside the flash it drives.",
        ("The recipe's address or length runs outside the internal flash.",),
        ("Fix the recipe's address and length against the part's memory map.",),
        "address outside the internal flash: a recipe mistake",
    ),
    103: _Entry(
        "The internal flash controller reported an access error: an illegal command sequence for its state.",
        (
            "Programming a location that is not erased, or a command not allowed in the flash's current mode.",
            "A previous command left the controller in an error state.",
        ),
        ("Erase before programming; reset the board and rerun.",),
        "the flash controller reported an access error (not erased, or wrong state)",
    ),
    104: _Entry(
        "The internal flash refused to program or erase a protected region.",
        (
            "The region is protected (flash protection registers, execute-only or firewall regions) by the "
            "application or the part's configuration.",
            "The part is secured.",
        ),
        (
            "Do not write protected regions from the recipe, or clear the protection first (a mass erase that "
            "unsecures, where the part allows it).",
        ),
        "the flash refused to change a protected region",
    ),
    105: _Entry(
        "The internal flash controller reported that the erase or program command failed.",
        (
            "A supply glitch during the operation.",
            "A worn or defective flash sector.",
        ),
        ("Retry; if it repeats at the same address on the same board, the flash is bad: set the board aside.",),
        "the flash controller reported that the erase/program command failed",
    ),
    10000: _Entry(
        "The ROM or flashloader does not implement the command it was sent.",
        (
            "Talking to the wrong stage: the i.MX RT ROM speaks SDP, only the flashloader speaks the full mboot "
            "command set, and the ROM of an mboot part implements fewer commands than a flashloader.",
            "A flashloader build with that command disabled.",
        ),
        (
            "Check that the flashloader was loaded and is running before memory commands.",
            "Use a flashloader build that supports the command, or drop it from the recipe.",
        ),
        "the bootloader does not implement this command: wrong stage or flashloader build",
    ),
    10001: _Entry(
        "The bootloader refused the command because the part is secured or the command is not allowed.",
        (
            "The part's security is enabled (flash security, closed HAB lifecycle): only a subset of commands "
            "is allowed.",
            "A key or signed image is required and was not given.",
        ),
        (
            "Check the part's security fuses or flash security bytes.",
            "Use a signed flashloader for a closed part, or unsecure it where the part allows it.",
        ),
        "the part is secured: the bootloader does not allow this command",
    ),
    10002: _Entry(
        "The target aborted the data phase of the command: it stopped the transfer of the data that follows "
        "the command.",
        (
            "The command failed before its data was transferred (e.g. an invalid range or memory not "
            "configured); the first status tells why.",
            "The USB link glitched during the transfer.",
        ),
        ("Look for the status code reported just before in the same step; retry the step.",),
        "the target aborted the data phase: the command failed at its start",
    ),
    10003: _Entry(
        "The target did not answer the serial framing ping correctly.",
        ("A serial (UART/I2C/SPI) link with a wrong baud rate or interface; the board is not in its bootloader.",),
        ("Check the connection and that the board is in the ROM or flashloader.",),
        "the target did not answer the ping: wrong link or board not in its bootloader",
    ),
    10004: _Entry(
        "No response packet came back from the target.",
        (
            "The board reset or crashed during the command, or its USB link dropped.",
            "The command took longer than the timeout (e.g. an erase of a large range).",
            "The hub port browned out (too many boards, weak supply).",
        ),
        (
            "Reset or power-cycle the board and rerun.",
            "Check cables and hub power; raise the command's deadline for long erases.",
        ),
        "no response from the board: it reset, crashed or lost its USB link",
    ),
    10200: _Entry(
        "The address range is outside the memories the flashloader knows ({flexspi}), or runs past the end "
        "of the configured flash.",
        (
            "A recipe mistake: the image address or length is wrong for this part.",
            "The image is larger than the flash size the configured flash reports.",
        ),
        (
            "Fix the recipe's address and length.",
            "Compare the image size with the configured flash's size (get-property 25, external memory attributes).",
        ),
        "address range outside the memory map or past the flash size: a recipe mistake",
    ),
    10201: _Entry(
        "The memory driver failed to read the range.",
        (
            "The external memory's read path fails at the configured clock.",
            "The memory stopped answering (not configured any more, or power).",
        ),
        ("Re-configure the memory and retry; lower the max frequency ({steps}).",),
        "the memory driver failed to read the range",
    ),
    10202: _Entry(
        "The memory driver failed to write the range.",
        (
            "A failure of the flash driver underneath (see the FlexSPI NOR codes 20100-20106).",
            "Write protection, or an unstable supply during programming.",
        ),
        ("Re-configure the memory and retry; if it repeats, look for the driver's own code in the log.",),
        "the memory driver failed to write the range",
    ),
    10203: _Entry(
        "The write would program a page that is not erased: the flashloader never programs a page twice "
        "(it checks that the destination is still erased).",
        (
            "The range was not erased before the write, or the erase covered less than the image.",
            "A write was sent again over pages that an earlier attempt already programmed.",
            "Two images of the recipe overlap.",
        ),
        (
            "Erase the whole range, rounded up to sectors, before writing.",
            "Never resend a write without re-erasing; make sure images do not overlap.",
        ),
        "writing over a page that is not erased: the flashloader never programs a page twice",
        "re-erase before re-writing: " + _REFLASH_RERUN,
    ),
    10204: _Entry(
        "The range overlaps an execute-only region of the flash, which may not be read or written.",
        ("The recipe writes into a region the part's access control makes execute-only.",),
        ("Move the image, or clear the execute-only configuration (usually only by a mass erase).",),
        "the range overlaps an execute-only region",
    ),
    10205: _Entry(
        "The external memory is not configured in this flashloader session: erase, write and read need a "
        "configure-memory first.",
        (
            "configure-memory was not run, or it failed.",
            "The board was reset (or re-enumerated) since: the flashloader forgets its configuration.",
        ),
        (
            "Run configure-memory (the option word in RAM, then configure-memory 9) before memory commands.",
            "If it appears mid-flow, the board reset itself: check its supply and the hub port.",
        ),
        "memory not configured: configure-memory first, or the board was reset",
    ),
    10300: _Entry(
        "The ROM or flashloader does not implement this property.",
        ("A property tag this bootloader version does not know.",),
        ("Do not depend on that property; check the flashloader version.",),
        "the bootloader does not know this property",
    ),
    10301: _Entry(
        "set-property was sent for a read-only property.",
        ("The recipe sets a property that can only be read.",),
        ("Fix the recipe: do not set that property.",),
        "the property is read-only: a recipe mistake",
    ),
    20100: _Entry(
        "The FlexSPI NOR driver's page-program sequence failed.",
        (
            "The flash did not latch write-enable: write-protected by its WP# pin or block-protect bits.",
            "The program sequence (LUT) does not suit this flash: wrong option word or FCB.",
            "A marginal bus between MCU and flash.",
        ),
        (
            "Re-configure and retry; check WP# and the status register's block-protect bits.",
            "Check that the option word or FCB matches the flash.",
        ),
        "the FlexSPI NOR page program failed",
    ),
    20101: _Entry(
        "The FlexSPI NOR driver's sector-erase sequence failed.",
        (
            "The flash did not latch write-enable: write-protected by its WP# pin or block-protect bits.",
            "The erase sequence (LUT) does not suit this flash: wrong option word or FCB.",
        ),
        (
            "Re-configure and retry; power-cycle the port to clear volatile block protection.",
            "Check that the option word or FCB matches the flash.",
        ),
        "the FlexSPI NOR sector erase failed",
    ),
    20102: _Entry(
        "The FlexSPI NOR driver's chip-erase sequence failed.",
        (
            "The flash is write-protected (WP# pin or block-protect bits).",
            "The chip-erase command of the configuration does not suit this flash.",
        ),
        ("Erase by region instead; power-cycle to clear volatile protection; check the option word or FCB.",),
        "the FlexSPI NOR chip erase failed",
    ),
    20103: _Entry(
        "The flash stayed busy longer than the FlexSPI NOR driver waits for it.",
        (
            "The status-register read or its busy bit is configured wrong for this flash (FCB).",
            "The flash is in a mode the configuration does not expect (QPI, deep power-down) after an application ran.",
            "A very long operation (a large erase).",
        ),
        (
            "Power-cycle the port to reset the flash, then re-configure and retry.",
            "Check the FCB's busy-bit settings.",
        ),
        "the flash stayed busy too long (FlexSPI NOR wait timeout)",
    ),
    20104: _Entry(
        "The flash's page size (from SFDP or the FCB) is larger than the FlexSPI NOR driver supports.",
        ("A large-page flash, or a wrong page size in the FCB.",),
        ("Configure with an FCB giving the correct page size.",),
        "the flash's page size is larger than the driver supports",
    ),
    20105: _Entry(
        "A new write must start on a page boundary: the FlexSPI NOR driver programs whole pages and only lets "
        "a write that continues the previous one start mid-page.",
        (
            "The recipe's image address is not page-aligned (pages are usually 256 bytes).",
            "A write was resumed in the middle of a page after a failure.",
        ),
        (
            "Page-align image addresses in the recipe (pad the image at its front).",
            "Rerun a failed write from its erase, from the image's start.",
        ),
        "write alignment: a new write must start on a page boundary",
        "a misaligned recipe fails the board at once with the reason; a write that stopped mid-page is redone "
        "from its erase, starting on the image's page boundary: " + _REFLASH_RERUN,
    ),
    20106: _Entry(
        "The erased or written range did not read back correctly at the configured FlexSPI clock. The FlexSPI "
        "NOR driver erases (and programs) at a safe ~30 MHz clock; then, with the VerifyWrites property on "
        "(property 10, the default), it reads the range back at the option word's max frequency (option0 bits "
        "3:0; {fast}) and returns 20106 if any word is not as expected (0xFF after an erase, the data after a "
        "write).",
        (
            "The fast read path is marginal on this board: signal integrity, DQS pad loading, temperature. The "
            "failure is intermittent and follows boards and conditions, not the image.",
            "The erase did not happen: the flash is write-protected by block-protect bits an application left "
            "set in its status register. Volatile protection is cleared by a power cycle or replug (not by a USB "
            "reset); non-volatile protection needs a status-register write (e.g. a full FCFB block with such a "
            "sequence).",
        ),
        (
            "Lower the max frequency code: {steps}; e.g. {slower}.",
            "Raise the pad drive strength in option1 (option0 then declares one extra word, e.g. 0xC1000007).",
            "Power-cycle the port or replug the board to clear volatile block protection; clear non-volatile "
            "protection with a status-register write.",
            "`set-property 10 0` (VerifyWrites off) only hides the error: the flash stays unerased or unreliable "
            "at speed.",
        ),
        "the erased/written range did not read back correctly at the configured FlexSPI clock: a marginal fast "
        "read path, or write-protected flash",
        "diagnose: re-configure at the safe clock and read the range back. All 0xFF after an erase -> the read "
        "path is marginal: continue at the highest clock that reads back correctly, stepping down the frequency "
        "table ({steps}). Not erased -> write-protected: power-cycle the port when allowed, else fail the board "
        "permanently",
    ),
    20107: _Entry(
        "The flashloader probed the flash's SFDP table (JESD216), as the option word asked, and found none.",
        (
            "No flash, or a wrong flash (no SFDP) on the board.",
            "The option word's device type or pads are wrong for this flash (e.g. an octal option on a quad flash).",
            "A soldering defect on the FlexSPI lines, or no supply to the flash.",
            "The flash is in a mode where it does not answer a 1-pad SFDP read (QPI, deep power-down).",
        ),
        (
            "Check that the option word matches the flash (0xC0000007 is QuadSPI SDR).",
            "Power-cycle the board; inspect the flash's soldering and supply.",
        ),
        "SFDP not found: no or wrong flash, a wrong option word, or a soldering fault",
    ),
    20108: _Entry(
        "The flash's SFDP table is a version the FlexSPI NOR driver does not support.",
        ("A flash with an older or newer SFDP revision than the flashloader knows.",),
        ("Configure with a full FCB instead of option words, or use a newer flashloader.",),
        "unsupported SFDP version: configure with a full FCB",
    ),
    20109: _Entry(
        "The FlexSPI NOR driver found no flash.",
        (
            "No flash, or a wrong flash, on the board.",
            "The option word's device type or pads are wrong for this flash.",
            "A soldering defect on the FlexSPI lines, or no supply to the flash.",
        ),
        (
            "Check the option word against the flash; power-cycle the board.",
            "Inspect the flash's soldering and supply.",
        ),
        "flash not found: no or wrong flash, a wrong option word, or a soldering fault",
    ),
    20110: _Entry(
        "In DTR (DDR) mode the driver probed for the read dummy cycles and no setting read correctly.",
        (
            "The flash does not support DTR reads as configured.",
            "Signal integrity or DQS at double data rate.",
        ),
        (
            "Use an SDR device type in the option word, lower the max frequency ({steps}).",
            "Configure with an FCB that gives the dummy cycles explicitly.",
        ),
        "the DTR read dummy-cycle probe failed: use SDR or a lower clock",
    ),
    20200: _Entry(
        "Reading a fuse word (OCOTP) failed.",
        (
            "The OCOTP controller reported an error or stayed busy.",
            "The word is read-protected, or the index is wrong for this part.",
        ),
        ("Reset the board and read again; check the fuse index in the recipe.",),
        "reading a fuse word failed",
    ),
    20201: _Entry(
        "Burning a fuse word (OCOTP) failed.",
        (
            "The fuse word is locked (its lock fuse is burnt).",
            "The OCOTP controller reported an error; an unstable supply during the burn.",
        ),
        (
            "Read the lock fuses; do not burn a locked word.",
            "Read the word back before anything else: OTP bits cannot be unburnt.",
        ),
        "OCOTP program failure: the fuse word may be locked",
    ),
    20202: _Entry(
        "Reloading the fuse shadow registers after a burn failed.",
        ("The OCOTP controller reported an error during the reload.",),
        ("Reset the board and read the fuses back.",),
        "reloading the fuse shadow registers failed",
    ),
    20203: _Entry(
        "The OCOTP (fuse) controller stayed busy too long.",
        ("A fuse controller stuck busy; a clock or supply problem.",),
        ("Reset or power-cycle the board and read the fuses back before burning again.",),
        "the fuse controller stayed busy too long",
    ),
}


# --- generic entries -----------------------------------------------------------------------------

# (first, last, subsystem, likely cause, remedy); the first match wins.
_GROUPS: tuple[tuple[int, int, str, str, str], ...] = (
    (6, 99, "The MCU bootloader", "the bootloader's generic status", "see the MCU bootloader reference manual"),
    (
        100,
        199,
        "The internal flash driver",
        "the internal flash controller refused or failed the command (protection, alignment, a busy or secured flash)",
        "check the address, alignment and protection of the internal flash region in the recipe",
    ),
    (200, 299, "The bootloader's I2C driver", "the I2C link to the host (gangd uses USB)", "check the host link"),
    (300, 399, "The bootloader's SPI driver", "the SPI link to the host (gangd uses USB)", "check the host link"),
    (
        400,
        499,
        "The QuadSPI flash driver",
        "the QuadSPI flash configuration or the flash itself",
        "check the QuadSPI configuration block against the flash",
    ),
    (
        500,
        599,
        "The OTFAD (on-the-fly AES decryption) driver",
        "OTFAD keys or the part's security configuration",
        "check the OTFAD key blobs and the security fuses",
    ),
    (1800, 1899, "The SD/MMC driver", "the SD/MMC card or its configuration", "check the card and its configuration"),
    (6500, 6599, "The uSDHC driver", "the SD/MMC host controller or its configuration", "check the uSDHC setup"),
    (
        6000,
        7099,
        "The FlexSPI controller",
        "the external flash interface: the configuration or the bus",
        "re-configure the memory; check the option word or FCB",
    ),
    (
        10000,
        10099,
        "The bootloader's command layer",
        "a command the bootloader cannot take in this state",
        "check the stage (ROM or flashloader) and the command",
    ),
    (
        10100,
        10199,
        "The SB file loader (receive-sb-file)",
        "the SB file: its keys, signature or contents",
        "check the SB file and the keys it was built with",
    ),
    (
        10200,
        10299,
        "The memory interface",
        "the memory range, its configuration or its protection",
        "check the recipe's addresses and configure-memory",
    ),
    (10300, 10399, "The property store", "a property the bootloader does not take", "check the property and value"),
    (
        10400,
        10499,
        "The application CRC check",
        "the application's CRC configuration",
        "check the CRC configuration of the image",
    ),
    (10500, 10599, "The serial packetizer", "serial framing between host and target", "check the link settings"),
    (10600, 10699, "Reliable update", "the reliable (swap) update configuration", "check the reliable update setup"),
    (
        10700,
        10799,
        "The serial NOR/EEPROM driver",
        "the serial NOR/EEPROM configuration or device",
        "check the configuration against the device",
    ),
    (10800, 10899, "The ROM API", "a ROM API call's buffer or data", "check the call's buffers"),
    (
        20000,
        20099,
        "The FlexSPI NAND driver",
        "the NAND configuration or the NAND itself",
        "check the NAND configuration and its bad blocks",
    ),
    (
        20100,
        20199,
        "The FlexSPI NOR driver",
        "the option word or FCB, the flash, or the bus",
        "re-configure; check the option word or FCB against the flash",
    ),
    (
        20200,
        20299,
        "The OCOTP (fuse) driver",
        "the fuse controller or a locked fuse word",
        "read the fuses back before anything else",
    ),
    (20900, 20999, "The xSPI NOR driver", "the xSPI configuration or the flash", "check the configuration"),
    (21100, 21199, "The SEMC NOR driver", "the parallel NOR configuration or device", "check the SEMC configuration"),
    (21200, 21299, "The SEMC NAND driver", "the parallel NAND configuration or device", "check the SEMC setup"),
    (22000, 22099, "The SPIFI NOR driver", "the SPIFI configuration or the flash", "check the SPIFI configuration"),
    (
        30000,
        30099,
        "The EdgeLock secure enclave",
        "an enclave request: lifecycle, OTP or a refused operation",
        "check the lifecycle and the request",
    ),
    (
        52000,
        52999,
        "The OTP driver",
        "an OTP (fuse) word: locked, invalid or failed to program",
        "read the OTP back before anything else",
    ),
    (
        80000,
        80199,
        "The trust provisioning firmware",
        "the provisioning data or the device state",
        "check the provisioning setup",
    ),
    (
        100000,
        100099,
        "The in-application programming (IAP) API",
        "the flash operation requested through IAP",
        "check the address and state of the flash",
    ),
    (1515890085, 1515890085, "The security subsystem", "the security subsystem", "see the part's reference manual"),
)
_EL2GO = (
    "The EdgeLock 2GO provisioning firmware",
    "the provisioning data, keys or the device's fuses",
    "check the EdgeLock 2GO provisioning setup",
)

_CLASS_CAUSE = {
    recovery.TRANSIENT: "A passing failure of the memory controller or of the bus between the MCU and the memory.",
    recovery.BOARD: "The board or its flashloader is in a state a clean restart from the ROM may clear.",
    recovery.PERMANENT: "The recipe asks for something this part or its configuration cannot do.",
}
_CLASS_REMEDY = {
    recovery.TRANSIENT: "Re-configure the memory and retry the step; if it repeats, lower the memory clock or "
    "check the board.",
    recovery.BOARD: "Reset or power-cycle the board and rerun from the ROM; if it repeats on the same board, set "
    "it aside for analysis.",
    recovery.PERMANENT: "Fix the recipe (addresses, lengths, memory id, option words) or the part's "
    "configuration; retrying will not help.",
}


def _group(code: int) -> tuple[str, str, str]:
    for first, last, subsystem, cause, remedy in _GROUPS:
        if first <= code <= last:
            return subsystem, cause, remedy
    return _EL2GO


def _description(member: StatusCode) -> str:
    """spsdk's description without a repeated label prefix or a trailing full stop."""
    text = (member.description or "").strip()
    label = member.label.strip()
    if text.startswith(label + ":") and len(text) > len(label) + 1:
        text = text[len(label) + 1 :].strip()
    return text.rstrip(".")


def _plain(description: str) -> str:
    """The description without its subsystem prefix ("FLEXSPI: Device Timeout" -> "Device Timeout")."""
    prefix, sep, rest = description.partition(": ")
    return rest.strip() if sep and rest.strip() and len(prefix) <= 40 else description


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _generic(member: StatusCode, klass: str) -> _Entry:
    subsystem, cause, remedy = _group(member.tag)
    description = _plain(_description(member))
    if member.tag in SUCCESS_TAGS:
        return _Entry(
            f"{subsystem} reports: {description}. This is not a failure.",
            ("Nothing went wrong.",),
            ("None needed.",),
            f"{description}, not a failure",
            "nothing to do, not a failure",
        )
    return _Entry(
        f"{subsystem} reports: {description}.",
        (_sentence(cause), _CLASS_CAUSE.get(klass, _CLASS_CAUSE[recovery.BOARD])),
        (_sentence(remedy), _CLASS_REMEDY.get(klass, _CLASS_REMEDY[recovery.BOARD])),
        f"{description} ({subsystem.removeprefix('The ')}, {klass} failure)",
    )


# --- public API ----------------------------------------------------------------------------------


def _member(code: int) -> StatusCode:
    if code not in StatusCode.tags():
        raise KeyError(f"unknown status code {code} ({code:#x}): spsdk does not know it")
    return StatusCode.from_tag(code)


def explain(code: int, family: str = DEFAULT_FAMILY) -> Explanation:
    """The explanation of a status code, worded for `family`. Raises KeyError for a code spsdk does not know."""
    if code in HAB_WORDS:  # the SDP ROM's HAB words (hab_explain.py)
        name, meaning, causes, remedies, klass, action = HAB_WORDS[code]
        return Explanation(code, name, meaning, causes, remedies, klass, action)
    member = _member(code)
    klass = recovery.classify(code)
    entry = _HAND.get(code) or _generic(member, klass)
    if code in SUCCESS_TAGS:
        klass = NOT_A_FAILURE
    ctx = _context(family) if code in _HAND else None

    def fmt(text: str) -> str:
        return text.format(**ctx) if ctx is not None else text

    return Explanation(
        code=code,
        name=member.label.strip(),
        meaning=fmt(entry.meaning),
        causes=tuple(fmt(c) for c in entry.causes),
        remedies=tuple(fmt(r) for r in entry.remedies),
        recovery_class=klass,
        action=fmt(entry.action) if entry.action else _class_action(klass),
    )


def _clip(text: str, limit: int = ONE_LINE_MAX) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def one_line(code: int, family: str = DEFAULT_FAMILY) -> str:
    """One short sentence (no newline, <= 160 characters) to append to a failed board record's reason."""
    member = _member(code)
    entry = _HAND.get(code) or _generic(member, recovery.classify(code))
    short = entry.short.format(**_context(family)) if code in _HAND else entry.short
    return _clip(f"{code}: {short}")


def parse_code(text: str) -> int:
    """A status code in decimal or 0x-hex. Raises ValueError for anything else."""
    text = text.strip()
    if text.lower().startswith(("0x", "-0x")):
        return int(text, 16)
    return int(text, 10)


def render(exp: Explanation, description: str) -> str:
    """The text `gangd explain` prints, wrapped to WIDTH columns."""
    indent = " " * 10

    def block(label: str, text: str) -> list[str]:
        return textwrap.wrap(
            text,
            WIDTH,
            initial_indent=f"{label:<10}",
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )

    def bullets(label: str, items: tuple[str, ...]) -> list[str]:
        lines: list[str] = []
        for i, item in enumerate(items):
            first = f"{label if i == 0 else '':<10}- "
            lines += textwrap.wrap(
                item,
                WIDTH,
                initial_indent=first,
                subsequent_indent=indent + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        return lines

    title = f"{exp.code} ({exp.code:#x}) {exp.name} — {description}."
    header = textwrap.wrap(title, WIDTH, subsequent_indent=indent, break_long_words=False)
    lines = header + block("meaning", exp.meaning) + bullets("causes", exp.causes) + bullets("remedies", exp.remedies)
    lines += block("gangd", f"{exp.recovery_class}: {exp.action}")
    return "\n".join(lines) + "\n"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="explain an MCU bootloader status code and gangd's recovery")
    parser.add_argument("code", metavar="CODE", help="status code, decimal or 0x-hex (e.g. 20106 or 0x4e8a)")
    parser.add_argument("--family", default=DEFAULT_FAMILY, help=f"spsdk family name (default {DEFAULT_FAMILY})")
    parser.set_defaults(func=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    from gangd.config.family import family_names

    if args.family not in family_names():
        print(f"gangd: unknown family {args.family!r}: not in spsdk's device database", file=sys.stderr)
        return 2
    try:
        code = parse_code(args.code)
    except ValueError:
        print(f"gangd: {args.code!r} is not a number: give a status code in decimal or 0x-hex", file=sys.stderr)
        return 2
    try:
        exp = explain(code, args.family)
    except KeyError:
        print(f"gangd: unknown status code {code} ({code:#x}): spsdk does not know it", file=sys.stderr)
        return 2
    description = "an SDP ROM HAB word" if code in HAB_WORDS else _description(StatusCode.from_tag(code))
    sys.stdout.write(render(exp, description))
    return 0


def explained(status: int, family: str) -> str:
    if (report := diverged_at(status)) is not None:  # a replayed board (gangd/trace)
        return divergence_reason(report)
    try:
        return one_line(status, family)
    except KeyError:
        return f"status {status} is unknown to spsdk"
