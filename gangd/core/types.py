"""The typed seams between gangd's floors: what each part must do for the others, and the closed
sets of values that flow through them (the metric label sets are derived from these).

The kernel (`gangd.core`) imports nothing else of gangd, so every floor above may name these.
Implementations: board sources `gangd.io.udev.UdevSource.run`, `gangd.sim.source.SimHubSource.run`
(and the soak's socket source); port power `gangd.io.power.SysfsPortPower`,
`gangd.sim.source.SimPortPower`; the board's port `gangd.station.port.Port`; records
`gangd.service.records.RecordStore`; metrics `gangd.service.metrics.Metrics`; the line's
reachability `gangd.service.line.LineState`. The job observer is `gangd.core.observer.JobObserver`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from gangd.core.events import PortEvent
from gangd.core.results import JobResult

if TYPE_CHECKING:  # a type only: the kernel imports nothing of gangd at run time
    from gangd.config.recipe import BoardData


class Result(enum.StrEnum):
    """How a board's job ended (records also hold `running` and `interrupted`, written by the store)."""

    SUCCESS = "success"
    FAILED = "failed"
    REMOVED = "removed"
    STOPPED = "stopped"


class PortState(enum.StrEnum):
    IDLE = "idle"
    QUEUED = "queued"  # in its ROM, waiting for room on its root port (bandwidth)
    PROGRAMMING = "programming"
    RECOVERING = "recovering"
    WAITING_REPLUG = "waiting-replug"
    SUSPECT = "suspect"
    DISABLED = "disabled"


class BoardSource(Protocol):
    """Delivers every PortEvent to `emit`, boards already present first; `task_status.started()`
    once those are delivered (trio's start protocol); then live events until cancelled."""

    async def __call__(
        self, emit: Callable[[PortEvent], None], *, task_status: trio.TaskStatus[None] = ...
    ) -> None: ...


class PortPower(Protocol):
    """Power-cycles a hub port: the last resort before asking the operator to replug a board."""

    def available(self, port: str) -> bool: ...

    async def power_cycle(self, port: str) -> None: ...


class BoardPort(Protocol):
    """The port as a board's job sees it: its name, the board on it, its events in order."""

    path: str
    label: str
    attached: PortEvent | None  # the board as of the last event consumed
    tap: Callable[[PortEvent], None] | None  # sees each event delivered (a job's trace)

    @property
    def step(self) -> str | None: ...

    async def next_event(self) -> PortEvent: ...

    async def wait_for_stage(self, stage: str, timeout_s: float, step: str, serial: str | None = None) -> PortEvent:
        """The next add of `stage` on the port, under a deadline (ReplugTimeout / BoardRemoved)."""
        ...


class RunningJob(Protocol):
    """A board's job as the station runs it: in its own process (`gangd.engine.job.Job`) or in a
    worker process (`gangd.station.workers.RemoteJob`)."""

    event: PortEvent  # the board's add that started it
    result: JobResult  # as known so far (complete once run() returns)
    rebooting: bool  # ended on a reset: the station watches for the board's return

    @property
    def attempt(self) -> int:
        """The attempt running now (1, then one more after each recovery), for the live views."""
        ...

    async def run(self) -> JobResult: ...


class BusSlots(Protocol):
    """A job's slot on its root port's bandwidth (`gangd.core.bus.Admission`; in a worker process,
    the supervisor's, through `gangd.station.worker`)."""

    async def enter(self, path: str, waiting: Callable[[], None]) -> None:
        """Until the port's root port has room; `waiting` is called first if the board must wait."""
        ...

    def leave(self, path: str) -> None: ...

    async def reset_turn(self, path: str) -> None:
        """Until the finished board on `path` may be reset (gangd/core/scheduling.py)."""
        ...


class JobRecords(Protocol):
    """The durable records: a row per job (inserted when it starts, completed when it ends) and the
    per-board values taken in one transaction with it."""

    def start(self, **fields: object) -> int: ...

    def update(self, job_id: int, **fields: object) -> bool:
        """False: the journal cannot take it now; the store holds it and writes it later."""
        ...

    def allocate(self, record_id: int, board_id: str, entries: list[BoardData]) -> dict[str, str]: ...

    def has_values(self, entries: Sequence[BoardData]) -> bool:
        """Does every list among `entries` still have a value to hand out?"""
        ...


class PortMetrics(Protocol):
    """What one port reports to the metrics."""

    def state(self, shown: str) -> None: ...

    def suspect(self, value: bool) -> None: ...

    def step_finished(self, step: str, seconds: float) -> None: ...

    def step_failed(self, step: str, code_class: str, action: str) -> None: ...

    def clock_fallback(self) -> None: ...

    def bytes_written(self, count: int) -> None: ...

    def board_finished(self, result: str, duration_s: float, at: float) -> None: ...

    def secure_boot(self, stage: str, result: str) -> None: ...


class StationMetrics(Protocol):
    def port(self, label: str) -> PortMetrics:
        """The port's series, every one of them created at zero."""
        ...


class JournalStatus(Protocol):
    """Whether the station's journal takes writes (a job starts only if its record can be written)."""

    @property
    def writable(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...

    async def wait_writable(self) -> None: ...


class LineStatus(Protocol):
    """Whether the line database answered last time (per-board data comes from it)."""

    available: bool
    reason: str | None

    def failed(self, reason: str) -> None: ...

    async def wait_available(self) -> None: ...
