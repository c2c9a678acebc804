"""One physical USB port of the station: its events, in order, and "wait for replug".

A board is known by the port it sits in. The port's events arrive in one queue that whoever is
in charge reads: the port task while the port is idle, the board's job while it runs. Waiting for a
replug (fwupd's remove-delay) means reading that queue until an add of the expected stage shows up
on this port, under a deadline.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable

import trio

from gangd.config.family import FamilyInfo, stage_of
from gangd.core.errors import BoardRemoved, ReplugTimeout
from gangd.core.events import ADD, PortEvent
from gangd.core.results import JobResult
from gangd.core.types import PortMetrics, RunningJob


class Port:
    def __init__(self, path: str, label: str | None, family: FamilyInfo, metrics: PortMetrics | None = None) -> None:
        self.path = path
        self.label = label or path
        self.family = family
        self.metrics = metrics
        self._send, self._receive = trio.open_memory_channel[PortEvent](math.inf)
        self._unread: deque[PortEvent] = deque()  # handed back by a job in a worker process, read first
        self.attached: PortEvent | None = None  # the board as of the last event consumed
        self.present = False  # a board is there as of the last event delivered (not yet consumed)
        self._state = "idle"
        self._suspect = False
        self._disabled = False  # by the operator: no new job starts here, its board is left alone
        self._step: str | None = None
        self._progress = 0.0  # the running job's weighted progress, 0..1
        self.last_result: str | None = None
        self.last_reason: str | None = None
        self.counts: dict[str, int] = {}
        self.busy_since: float | None = None  # monotonic time the running job began
        self.job: RunningJob | None = None  # the job running here (set by the station), for the live views
        self.last_job: JobResult | None = None  # the result of the last board finished here
        self.last_duration_s: float | None = None
        self.on_change: Callable[[], None] = lambda: None  # the station's live view listens here
        self.tap: Callable[[PortEvent], None] | None = None  # a running job's trace (gangd/trace)
        self.wake: trio.CancelScope | None = None  # a task holding a board while the port is disabled
        # Added to every wait for the board to come back: its host controller's queue (core/bus.py
        # enumeration_allowance_s), set by the station from the ports it knows.
        self.enumeration_allowance_s = 0.0

    # --- what the port is doing, mirrored into the metrics ----------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != "idle" and self._state == "idle":
            self.busy_since = time.monotonic()
        self._state = value
        self._export_state()
        self.on_change()

    @property
    def step(self) -> str | None:
        return self._step

    @step.setter
    def step(self, value: str | None) -> None:
        self._step = value
        self.on_change()

    @property
    def progress(self) -> float:
        return self._progress

    @progress.setter
    def progress(self, value: float) -> None:
        self._progress = value
        self.on_change()

    @property
    def disabled(self) -> bool:
        """Disabled by the operator: a running job finishes, no new one starts."""
        return self._disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self._disabled = value
        self._export_state()
        if not value and self.wake is not None:
            self.wake.cancel()  # the port task holding a board goes on with it
        self.on_change()

    @property
    def suspect(self) -> bool:
        """Its boards fail here and pass on other ports."""
        return self._suspect

    @suspect.setter
    def suspect(self, value: bool) -> None:
        self._suspect = value
        if self.metrics is not None:
            self.metrics.suspect(value)
        self._export_state()
        self.on_change()

    @property
    def shown_state(self) -> str:
        if self._state == "idle" and self._disabled:
            return "disabled"
        return "suspect" if self._suspect and self._state == "idle" else self._state

    def _export_state(self) -> None:
        if self.metrics is not None:
            self.metrics.state(self.shown_state)

    # --- the job observer (observer.py): what the port's job does, for /status and the metrics ----

    async def job_started(self, result: JobResult, images: list[dict[str, object]], family: str) -> None:
        self.state, self.progress = "programming", 0.0

    async def job_finished(self, result: JobResult) -> None:
        self.step, self.state = None, "idle"
        if self.metrics is not None:
            for entry in result.secure_boot:  # [secure_boot] stage outcomes
                self.metrics.secure_boot(entry["stage"], entry["result"])

    def state_changed(self, state: str) -> None:
        self.state = state

    def step_started(self, step: str) -> None:
        self.step = step

    def progress_changed(self, fraction: float) -> None:
        self.progress = fraction

    def step_finished(self, step: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.step_finished(step, seconds)

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        if self.metrics is not None:
            self.metrics.step_failed(step, code_class, action)

    def clock_fallback(self) -> None:
        """A board on this port was programmed below the recipe's flash clock (a marginal board)."""
        if self.metrics is not None:
            self.metrics.clock_fallback()

    def bytes_written(self, length: int) -> None:
        if self.metrics is not None:
            self.metrics.bytes_written(length)

    def finished(self, result: str, reason: str | None, duration_s: float, at: float) -> None:
        """Called once the job's record is committed: counts follow the records."""
        self.last_result, self.last_reason = result, reason
        self.last_duration_s = duration_s
        self.counts[result] = self.counts.get(result, 0) + 1
        self.on_change()
        if self.metrics is not None:
            self.metrics.board_finished(result, duration_s, at)

    def deliver(self, event: PortEvent) -> None:
        """Called by the station, in event order, from the trio thread."""
        self.present = event.action == ADD
        if self.tap is not None:
            self.tap(event)
        self._send.send_nowait(event)
        self.on_change()

    async def next_event(self) -> PortEvent:
        while True:
            event = await self.receive_delivered()
            if event.action == ADD and self.attached == event:
                continue  # the same enumeration reported twice (coldplug racing the monitor)
            self.attached = event if event.action == ADD else None
            self.on_change()  # the board the port holds is on the views (and what tests wait on)
            return event

    async def receive_delivered(self) -> PortEvent:
        """The next delivered event, without consuming it as the port's board (`attached` stays):
        for a job in a worker process, whose mirror of the port consumes it (station/workers.py)."""
        if self._unread:
            return self._unread.popleft()
        return await self._receive.receive()

    def unread(self, events: Iterable[PortEvent], attached: PortEvent | None) -> None:
        """A job in a worker process ended: the events it was sent but did not consume are read
        next, in order, and the port holds the board its job last saw, as if the job had run here."""
        self._unread.extendleft(reversed(list(events)))
        self.attached = attached
        self.on_change()

    def take_undelivered(self) -> list[PortEvent]:
        """The events delivered and not yet read, in order (the port is left empty)."""
        events = list(self._unread)
        self._unread.clear()
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                return events

    async def wait_for_stage(self, stage: str, timeout_s: float, step: str, serial: str | None = None) -> PortEvent:
        """The next add of `stage` on this port; ReplugTimeout naming port, step and deadline.

        The port is the board's name, but not a proof: if the operator swapped boards while this
        one was off the bus, the newcomer's USB serial tells (when both have one)."""
        with trio.move_on_after(timeout_s + self.enumeration_allowance_s):
            while True:
                event = await self.next_event()
                if event.action == ADD and serial and event.serial and event.serial != serial:
                    raise BoardRemoved(
                        self.path,
                        step,
                        f"another board (serial {event.serial}) appeared on the port: {serial} was taken out",
                    )
                if event.action == ADD and stage_of(self.family, event) == stage:
                    return event
        queue = f" (+{self.enumeration_allowance_s:.1f} s for its controller's other ports)"
        raise ReplugTimeout(
            self.path,
            step,
            f"the {stage} did not appear on the port within {timeout_s:g} s{queue if self.enumeration_allowance_s else ''}",
            kind="replug-timeout",
        )
