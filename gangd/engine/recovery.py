"""What to do about a failure: one table from status code (or failure kind) to a recovery class.

- transient: the flash step failed; flash read-back failures (see `FLASH_READBACK`) are diagnosed
  by mechanism first (a marginal read path lowers the flash clock, write protection escalates to
  the power class), then the image is programmed again from its erase.
- board: the board is in a bad state; reset it, wait for it on its port, rerun the flow from the start.
- power: only a power cycle can help (volatile write protection survives a reset): cycle the port
  when allowed and not yet done for this board, else fail permanently.
- permanent: retrying cannot help (the recipe or the part is wrong); fail at once with the reason.

Reference: spsdk `mboot/error_codes.py`. Codes not in the table are treated as board-class: a
reset and a clean rerun is the safe default for a state we do not understand.
"""

from __future__ import annotations

from spsdk.mboot.error_codes import StatusCode

from gangd.trace import diverged_at

TRANSIENT = "transient"
BOARD = "board"
POWER = "power"
PERMANENT = "permanent"
CLASSES = (TRANSIENT, BOARD, POWER, PERMANENT)

# Recovery actions recorded in attempts.
RECONFIGURE = "reconfigure-memory"
LOWER_CLOCK = "lower-flash-clock"
RETRY = "retry-step"  # a memory that needs no configuration: the step's group simply runs again
RESET = "reset-board"
POWER_CYCLE = "power-cycle-port"
REPLUG = "ask-operator-to-replug"
NONE = "none"
ACTIONS = (RECONFIGURE, LOWER_CLOCK, RETRY, RESET, POWER_CYCLE, REPLUG)

# How a board is brought back to its ROM, per class: each action in turn until one does (the
# strategies are registered by action in `recoveries.py`; the last one, the operator's replug,
# ends the job with the reason).
BOARD_RECOVERY: dict[str, tuple[str, ...]] = {
    TRANSIENT: (RESET, POWER_CYCLE, REPLUG),  # a flash group out of retries: the whole flow again
    BOARD: (RESET, POWER_CYCLE, REPLUG),
    POWER: (POWER_CYCLE, REPLUG),  # volatile write protection survives a reset
}

STATUS_CLASS: dict[int, str] = {
    # FlexSPI NOR driver: the flash or the bus did not answer one command; the flash is fine.
    StatusCode.FLEXSPINOR_PROGRAM_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_ERASE_SECTOR_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_ERASE_ALL_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_WAIT_TIMEOUT.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_WRITE_ALIGNMENT_ERROR.tag: PERMANENT,
    # 20106, the user's failure: a read-back at the option word's clock differed (docs/FLASHLOADER.md);
    # diagnosed by mechanism, see FLASH_READBACK.
    StatusCode.FLEXSPINOR_COMMANDFAILURE.tag: TRANSIENT,
    # 10203: a page to program was not erased: our erase did not happen, or its blank check was
    # read wrongly at a marginal clock. Diagnosed like 20106; the image is re-erased before it is
    # written again.
    StatusCode.MEMORY_CUMULATIVE_WRITE.tag: TRANSIENT,
    StatusCode.FLASH_COMMAND_FAILURE.tag: TRANSIENT,
    StatusCode.MEMORY_WRITE_FAILED.tag: TRANSIENT,
    StatusCode.MEMORY_READ_FAILED.tag: TRANSIENT,
    # The memory is not (or no longer) configured, or the flash was not found: start over.
    StatusCode.MEMORY_NOT_CONFIGURED.tag: BOARD,
    StatusCode.FLEXSPINOR_SFDP_NOTFOUND.tag: BOARD,
    StatusCode.FLEXSPINOR_FLASH_NOTFOUND.tag: BOARD,
    StatusCode.NO_RESPONSE.tag: BOARD,
    StatusCode.OCOTP_PROGRAM_FAILURE.tag: BOARD,  # rerun reads the fuse back before anything else
    # The recipe asks for something this part cannot do.
    StatusCode.MEMORY_RANGE_INVALID.tag: PERMANENT,
    StatusCode.FLASH_ALIGNMENT_ERROR.tag: PERMANENT,
    StatusCode.FLASH_ADDRESS_ERROR.tag: PERMANENT,
    StatusCode.FLASH_PROTECTION_VIOLATION.tag: PERMANENT,
    StatusCode.UNKNOWN_COMMAND.tag: PERMANENT,
    StatusCode.SECURITY_VIOLATION.tag: PERMANENT,
    StatusCode.INVALID_ARGUMENT.tag: PERMANENT,
    StatusCode.MEMORY_WRITE_PROTECTED.tag: PERMANENT,
}

# Failures that carry no status code, by kind.
KIND_CLASS: dict[str, str] = {
    "timeout": BOARD,  # a step's deadline fired: the board stopped answering
    "lost-contact": BOARD,
    "malformed": BOARD,  # a reply that does not parse: reset and start clean
    "verify-mismatch": TRANSIENT,  # re-write after re-configuring; repeated mismatch escalates
    "replug-timeout": BOARD,
    "wrong-device": PERMANENT,
    "write-protected": POWER,  # the diagnosis found the erase did not happen
    "marginal-board": PERMANENT,  # [quality] marginal = "reject" and the board needed a lower clock
    "fuse-conflict": PERMANENT,
    "fuse-readback": PERMANENT,  # a burn that did not stick: OTP cannot be fixed by retrying
    "rom-refused": PERMANENT,  # the ROM would not run the flashloader (HAB, image)
    "secure-boot-proof": PERMANENT,  # the signed images did not authenticate: never closed, not retried
    # A flashloader the bus refused (no HID node, no bandwidth): back to its ROM by its port's power,
    # then it waits for room like any board.
    "bandwidth": BOARD,
}


def classify(status: int | None, kind: str | None = None) -> str:
    if kind is not None and kind in KIND_CLASS:  # a diagnosis knows more than the status it started from
        return KIND_CLASS[kind]
    if status is not None and status in STATUS_CLASS:
        return STATUS_CLASS[status]
    if diverged_at(status) is not None:  # a replayed board has no answer: nothing will change that
        return PERMANENT
    return BOARD


# Flash failures whose mechanism a diagnosis can tell (docs/FLASHLOADER.md, "Why 20106 comes and goes"):
# a read-back at the configured clock differed, or a page to program was not blank.
FLASH_READBACK_STATUS = (StatusCode.FLEXSPINOR_COMMANDFAILURE.tag, StatusCode.MEMORY_CUMULATIVE_WRITE.tag)
FLASH_READBACK_KINDS = ("verify-mismatch",)


def is_flash_readback(status: int | None, kind: str | None) -> bool:
    return status in FLASH_READBACK_STATUS or kind in FLASH_READBACK_KINDS
