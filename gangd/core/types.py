"""The typed seams between gangd's parts: what a board source and a port's power switch must do,
and the closed sets of values that flow through them (the metric label sets are derived from these).

Implementations: board sources `gangd.io.udev.UdevSource.run`, `gangd.sim.source.SimHubSource.run`
(and the soak's socket source); port power `gangd.io.power.SysfsPortPower`,
`gangd.sim.source.SimPortPower`. The job observer is `gangd.core.observer.JobObserver`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from gangd.core.events import PortEvent


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

    async def __call__(self, emit: Callable[[PortEvent], None], *, task_status: Any = ...) -> None: ...


class PortPower(Protocol):
    """Power-cycles a hub port: the last resort before asking the operator to replug a board."""

    def available(self, port: str) -> bool: ...

    async def power_cycle(self, port: str) -> None: ...
