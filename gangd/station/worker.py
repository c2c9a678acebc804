"""A worker process's side of the station: it runs the jobs the supervisor hands it.

The supervisor (`workers.py`) keeps everything a station owns: the ports as the operator and the
views see them, the records and per-board data, the metrics, the bandwidth of each root port and
the ports' power. A worker runs the boards' jobs of the root ports it was given, each with its own
USB handle, exactly as the station would in its own process (`gangd.engine.job.Job`), against a
mirror of the board's port that the supervisor feeds with the port's events. What the job tells or
asks of the station goes back over the link:

- observer notes (state, step, progress, metrics) one way;
- calls that the job waits on: its record started and completed (durable before the job goes on,
  as in one process), per-board values (taken in the supervisor's transaction with the record),
  a power cycle, a slot on the root port;
- the job's end: its result, and the port's events it did not read, which the supervisor puts
  back in front of the port's queue, so the port is left as if the job had run there.

A worker ends its jobs as soon as its link ends: the supervisor alone holds the other end, so a
SIGKILLed gangd leaves no worker holding a board's handle for longer than its jobs take to cancel
(a shielded fuse burn completes first).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from gangd.config.recipe import BoardData, Recipe
from gangd.core.results import JobResult
from gangd.engine.job import Job
from gangd.station.link import JobStart, Link, LinkClosed, Message
from gangd.station.port import Port

log = structlog.get_logger("gangd.station.worker")


@dataclass
class _Running:
    start: JobStart
    port: Port
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    received: int = 0  # events the supervisor forwarded for this job


class WorkerJobs:
    """Serves one link until the supervisor closes it (or says quit)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.recipes: dict[int, Recipe] = {}
        self.jobs: dict[int, _Running] = {}
        self.stopping = False
        self._calls: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._waiting: dict[int, Callable[[], None]] = {}
        self._call_ids = itertools.count(1)
        self.token: trio.lowlevel.TrioToken | None = None
        self.closed = False

    async def serve(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.link.run_sender)
            self.tell(("ready",))
            async with trio.open_nursery() as jobs:
                while (message := await self.link.receive()) is not None:
                    if message[0] == "quit":
                        break
                    self._dispatch(message, jobs)
                # The supervisor is gone or done: nothing here may outlive it, and nothing waits
                # for an answer that cannot come.
                self.closed = True
                for answered, reply in self._calls.values():
                    reply[:] = [False, LinkClosed("the supervisor closed the link")]
                    answered.set()
                self._calls.clear()
                jobs.cancel_scope.cancel()
            self.link.finish()

    def tell(self, message: Message) -> None:
        """To the supervisor, in order (notes from synchronous observer calls, calls, the end)."""
        self.link.tell(message)

    def _dispatch(self, message: Message, nursery: trio.Nursery) -> None:
        kind = message[0]
        if kind == "recipe":
            _, version, recipe = message
            self.recipes[version] = recipe
            self._forget_recipes(keep=version)
        elif kind == "start":
            start: JobStart = message[1]
            self.stopping = self.stopping or start.stopping
            nursery.start_soon(self._run_job, start, name=f"job on {start.path}")
        elif kind == "event":
            _, key, event = message
            running = self.jobs.get(key)
            if running is not None:
                running.received += 1
                running.port.deliver(event)
        elif kind == "stopping":
            self.stopping = True
        elif kind == "cancel":
            running = self.jobs.get(message[1])
            if running is not None:
                running.scope.cancel()
        elif kind == "reply":
            _, call_id, ok, value = message
            pending = self._calls.pop(call_id, None)
            if pending is not None:
                pending[1][:] = [ok, value]
                pending[0].set()
        elif kind == "waiting":
            callback = self._waiting.get(message[1])
            if callback is not None:
                callback()
        else:
            log.error("unknown message from the supervisor skipped", kind=kind)

    def _forget_recipes(self, keep: int) -> None:
        used = {running.start.recipe_version for running in self.jobs.values()} | {keep}
        for version in [v for v in self.recipes if v not in used]:
            del self.recipes[version]

    # --- one job ------------------------------------------------------------------------------

    async def _run_job(self, start: JobStart) -> None:
        recipe = self.recipes[start.recipe_version]
        port = Port(start.path, start.label, recipe.family)
        port.attached = start.attached
        port.enumeration_allowance_s = start.enumeration_allowance_s
        running = self.jobs[start.key] = _Running(start, port)
        side = _Supervisor(self, start)
        job = Job(
            port,
            start.event,
            recipe,
            lambda: self.stopping,
            observers=[port, side],
            records=side if start.records else None,
            power=side if start.power else None,
            admission=side,
            job_id=start.job_id,
        )
        try:
            with running.scope:
                await job.run()
        except LinkClosed:
            log.warning("job abandoned: the supervisor is gone", port=start.path, job=start.job_id)
        finally:
            del self.jobs[start.key]
            unread = port.take_undelivered()
            self.tell(("done", start.key, job.result, job.rebooting, running.received, unread, port.attached))

    # --- calls into the supervisor ------------------------------------------------------------

    async def call(self, key: int, name: str, *args: Any, waiting: Callable[[], None] | None = None) -> Any:
        """`name(*args)` on the supervisor's side of job `key`; its exception is raised here."""
        if self.closed:
            raise LinkClosed("the supervisor closed the link")
        call_id = next(self._call_ids)
        answered, reply = trio.Event(), list[Any]()
        self._calls[call_id] = (answered, reply)
        if waiting is not None:
            self._waiting[call_id] = waiting
        self.tell(("call", call_id, key, name, args))
        try:
            await answered.wait()
        except BaseException:
            if self._calls.pop(call_id, None) is not None:  # not answered: the supervisor drops it
                self.tell(("cancel-call", call_id))
            raise
        finally:
            self._waiting.pop(call_id, None)
        ok, value = reply
        if not ok:
            raise value
        return value

    def call_from_thread(self, key: int, name: str, *args: Any) -> Any:
        """A call from a job's step thread (per-board values are taken inside a step)."""
        assert self.token is not None
        return trio.from_thread.run(lambda: self.call(key, name, *args), trio_token=self.token)


class _Supervisor:
    """What the job sees of the station that owns its port: an observer, the records, the port's
    power and its root port's slots (the seams in gangd.core.types), each a note or a call."""

    def __init__(self, jobs: WorkerJobs, start: JobStart) -> None:
        self.jobs = jobs
        self.key = start.key
        self.power_available = start.power

    def _note(self, name: str, *args: Any) -> None:
        self.jobs.tell(("note", self.key, name, args))

    # --- JobObserver ------------------------------------------------------------------------------

    async def job_started(self, result: JobResult, images: list[dict[str, object]], family: str) -> None:
        with trio.CancelScope(shield=True):  # the row exists before the job goes on, as in one process
            result.record_id = await self.jobs.call(self.key, "job_started", result, images, family)

    async def job_finished(self, result: JobResult) -> None:
        with trio.CancelScope(shield=True):  # the record is complete before the job's end is told
            await self.jobs.call(self.key, "job_finished", result)

    def state_changed(self, state: str) -> None:
        self._note("state_changed", state)

    def step_started(self, step: str) -> None:
        self._note("step_started", step)

    def step_finished(self, step: str, seconds: float) -> None:
        self._note("step_finished", step, seconds)

    def progress_changed(self, fraction: float) -> None:
        self._note("progress_changed", fraction)

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        self._note("step_failed", step, code_class, action)

    def bytes_written(self, count: int) -> None:
        self._note("bytes_written", count)

    def clock_fallback(self) -> None:
        self._note("clock_fallback")

    # --- JobRecords: the job itself only takes per-board values ---------------------------------

    def start(self, **fields: object) -> int:
        raise NotImplementedError("the supervisor starts a job's record (job_started)")

    def update(self, job_id: int, **fields: object) -> bool:
        raise NotImplementedError("the supervisor completes a job's record (job_finished)")

    def allocate(self, record_id: int, board_id: str, entries: list[BoardData]) -> dict[str, str]:
        """In the job's step thread: taken by the supervisor, in one transaction with the record."""
        values: dict[str, str] = self.jobs.call_from_thread(self.key, "allocate", record_id, board_id, entries)
        return values

    def has_values(self, entries: Sequence[BoardData]) -> bool:
        raise NotImplementedError("the supervisor decides whether a job may start")

    # --- PortPower ----------------------------------------------------------------------------

    def available(self, port: str) -> bool:
        return self.power_available

    async def power_cycle(self, port: str) -> None:
        await self.jobs.call(self.key, "power_cycle", port)

    # --- BusSlots -----------------------------------------------------------------------------

    async def enter(self, path: str, waiting: Callable[[], None]) -> None:
        await self.jobs.call(self.key, "enter", path, waiting=waiting)

    def leave(self, path: str) -> None:
        self._note("leave", path)

    async def reset_turn(self, path: str) -> None:
        await self.jobs.call(self.key, "reset_turn", path)
