"""Domain errors: every failure a job can end with names its port and its step."""

from __future__ import annotations


class JobError(Exception):
    """A provisioning step failed. `reason` is plain words; `status` the board's code, if any."""

    result = "failed"

    def __init__(self, port: str, step: str, reason: str, status: int | None = None, kind: str | None = None) -> None:
        super().__init__(f"port {port}: {step}: {reason}")
        self.port = port
        self.step = step
        self.reason = reason
        self.status = status
        self.kind = kind  # for failures without a status code: see recovery.KIND_CLASS


class StepTimeout(JobError):
    """A step's deadline fired while the board was still busy or silent."""


class ReplugTimeout(JobError):
    """The board did not come back on its port (after a jump or reset) before the deadline."""


class BoardRemoved(JobError):
    """The board left its port in the middle of the job."""

    result = "removed"


class CommandFailed(JobError):
    """The board answered a command with an error status."""


class JobStopped(JobError):
    """gangd is shutting down; the job ended at a safe point between steps."""

    result = "stopped"


class BandwidthExhausted(JobError):
    """The flashloader enumerated but its HID interface was refused for lack of periodic bandwidth
    on its root port (no hidraw node): the bus, not the board. The job recovers it like a board
    that cannot be talked to (power cycle back to its ROM, then admission); if it cannot, the job
    ends like a stop, never as a board failure."""

    result = "stopped"


class DataUnavailable(JobError):
    """No per-board value can be handed out (a list is exhausted): the board is not at fault, and
    the station starts no new job that needs a value until there is one."""

    result = "stopped"


class LineUnavailable(Exception):
    """The line database cannot be reached (raised by the line store; the station waits for it)."""


class JournalUnwritable(Exception):
    """The station's journal (its records) cannot be written now: disk full, read-only, an I/O
    error, locked past the busy timeout. A state of the station, not a crash: the message says why
    in the operator's words ("state directory full: /var/lib/gangd, 0 bytes free")."""


class JournalDamaged(Exception):
    """The journal file is not a gangd records database (damaged, or another program's file):
    gangd never deletes or overwrites it; the message names the file and what to do."""


class DataExhausted(Exception):
    """A list of per-board values has no unused value left (raised by the records store)."""
