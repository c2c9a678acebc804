"""What to do about a failure: one table from status code (or failure kind) to a recovery class.

- transient: the memory controller hiccuped; re-configure the memory and retry the step.
- board: the board is in a bad state; reset it, wait for it on its port, rerun the flow from the start.
- permanent: retrying cannot help (the recipe or the part is wrong); fail at once with the reason.

Reference: spsdk `mboot/error_codes.py`. Codes not in the table are treated as board-class: a
reset and a clean rerun is the safe default for a state we do not understand.
"""

from __future__ import annotations

from spsdk.mboot.error_codes import StatusCode

TRANSIENT = "transient"
BOARD = "board"
PERMANENT = "permanent"

# Recovery actions recorded in attempts.
RECONFIGURE = "reconfigure-memory"
RESET = "reset-board"
POWER_CYCLE = "power-cycle-port"
REPLUG = "ask-operator-to-replug"
NONE = "none"

STATUS_CLASS: dict[int, str] = {
    # FlexSPI NOR driver: the flash or the bus did not answer one command; the flash is fine.
    StatusCode.FLEXSPINOR_PROGRAM_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_ERASE_SECTOR_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_ERASE_ALL_FAIL.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_WAIT_TIMEOUT.tag: TRANSIENT,
    StatusCode.FLEXSPINOR_WRITE_ALIGNMENT_ERROR.tag: PERMANENT,
    StatusCode.FLEXSPINOR_COMMANDFAILURE.tag: TRANSIENT,  # 20106, the user's failure
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
    "fuse-conflict": PERMANENT,
    "fuse-readback": PERMANENT,  # a burn that did not stick: OTP cannot be fixed by retrying
    "rom-refused": PERMANENT,  # the ROM would not run the flashloader (HAB, image)
}


def classify(status: int | None, kind: str | None = None) -> str:
    if status is not None and status in STATUS_CLASS:
        return STATUS_CLASS[status]
    if kind is not None and kind in KIND_CLASS:
        return KIND_CLASS[kind]
    return BOARD
