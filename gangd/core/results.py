"""What one board's job produced: its result, step timings and the failures met on the way.

Written by the job engine (`job.py`), kept by the records (`to_record`), read by the station, the
status API and the metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# What a flash diagnosis found (gangd/engine/diagnosis.py decides; records and views read it).
READ_PATH = "marginal-read-path"
PROTECTED = "write-protected"
NO_FAULT = "no-fault-found"


@dataclass(frozen=True)
class Diagnosis:
    step: str  # the step that failed
    status: int | None
    finding: str  # READ_PATH | PROTECTED | NO_FAULT
    failed_mhz: int  # the read clock the step failed at
    mhz: int  # the read clock to continue at
    detail: str
    code: int | None = None  # option0's max_freq code for `mhz`; None for an FCFB configuration

    def to_record(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status,
            "finding": self.finding,
            "failed_mhz": self.failed_mhz,
            "mhz": self.mhz,
            "code": self.code,
            "detail": self.detail,
        }


@dataclass
class StepTiming:
    name: str
    seconds: float
    attempt: int = 1


@dataclass
class Attempt:
    attempt: int
    step: str
    status: int | None
    error: str
    klass: str
    action: str

    def to_record(self) -> dict:
        return {
            "attempt": self.attempt,
            "step": self.step,
            "status": self.status,
            "error": self.error,
            "class": self.klass,
            "action": self.action,
        }


@dataclass
class JobResult:
    job_id: int
    port: str
    label: str
    serial: str | None
    result: str  # success | failed | removed | stopped
    step: str | None = None
    reason: str | None = None  # what happened, in plain words
    explanation: str | None = None  # the status code's one-line explanation (failed jobs with a code)
    status: int | None = None
    board_id: str | None = None
    record_id: int | None = None
    started: float = 0.0
    duration_s: float = 0.0
    steps: list[StepTiming] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    fuses: list[dict] = field(default_factory=list)
    flash_clock_mhz: int | None = None  # the read clock the images were programmed and verified at
    diagnoses: list[Diagnosis] = field(default_factory=list)
    marginal: bool = False  # programmed below the recipe's clock: a marginal board, flagged
    board_data: dict[str, str] = field(default_factory=dict)  # per-board values this board got
    halt: str | None = None  # why the station must start no new job (per-board data exhausted)
    line_down: str | None = None  # the line database did not answer when this board's values were taken
    # The job's start could not be recorded (the journal is unwritable): it never touched the board.
    not_started: str | None = None
    # Its per-board data could not be recorded (the journal is unwritable): nothing was written to
    # the board, its record ends `stopped` saying so, and the board stays on its port for another
    # job once the journal takes writes (it is not finished: the operator leaves it there).
    journal_down: str | None = None
    # [secure_boot]: one entry per stage run, {"stage", "result", ...evidence} (engine/secure_boot.py)
    secure_boot: list[dict] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        """The part left HAB-closed (SEC_CONFIG[1] burned by this job, or found burned)."""
        return any(e["stage"] == "close" and e["result"] in ("burned", "already-closed") for e in self.secure_boot)

    @property
    def board_waits(self) -> bool:
        """The board stays on its port for another job: whoever takes finished boards leaves it."""
        return self.journal_down is not None

    @property
    def identity(self) -> str | None:
        return self.board_id or self.serial

    def to_record(self) -> dict[str, Any]:
        return dict(
            finished=time.time(),
            result=self.result,
            step=self.step,
            reason=self.reason,
            explanation=self.explanation,
            status=self.status,
            board_id=self.board_id,
            fuses=self.fuses,
            flash_clock_mhz=self.flash_clock_mhz,
            marginal=int(self.marginal),
            steps=[{"name": s.name, "seconds": round(s.seconds, 4), "attempt": s.attempt} for s in self.steps],
            attempts=[a.to_record() for a in self.attempts],
            diagnoses=[d.to_record() for d in self.diagnoses],
            board_data=self.board_data,
            secure_boot=self.secure_boot,
        )
