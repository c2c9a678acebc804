"""Worker processes for the station's jobs: ports grouped by root port, one supervisor.

One Python process runs one core. A station whose boards' jobs need more than a core (64 ports on
8 root ports, issue 22) runs them in worker processes, while the station itself stays the
supervisor: it keeps everything that must be one (the records and per-board values, the metrics,
the HTTP server and station page, each root port's bandwidth, the ports' power, the operator's
controls, sd_notify) and everything a port task decides (which board gets a job, reboots, suspect
ports), exactly as in one process. Only the job runs elsewhere (`worker.py`): its USB handle, its
steps, its trace file.

A root port's ports always go to the same worker (first come, round robin over the workers):
the boards that share a bus's bandwidth share a process, and the worker of a root port is found
without asking anyone. The guarantees hold as in one process:

- records: a job's row is written by the supervisor before the job goes on, and completed before
  its end is reported; a worker that dies mid-job leaves the job `stopped` with the reason, and
  the next job on its ports starts a fresh worker;
- per-board values are taken by the supervisor, in one transaction with the record, never twice;
- port identity: the worker's port is a mirror of the supervisor's, fed its events in order, and
  the events a job did not read are handed back, so the port task goes on as if the job ran here;
- SIGTERM: the supervisor tells the workers to stop (no new step), and past the grace time
  cancels their jobs, whose fuse steps are shielded there as here; workers ignore the signals
  themselves (systemd's KillMode=mixed sends SIGTERM to the supervisor only) and end their jobs
  when their link ends (the supervisor gone, SIGKILL included).
"""

from __future__ import annotations

import itertools
import pickle
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from gangd.config.recipe import Recipe
from gangd.core.bus import Admission, root_port
from gangd.core.events import ADD, PortEvent
from gangd.core.observer import JobObserver, Observers
from gangd.core.results import JobResult
from gangd.core.types import JobRecords, PortPower
from gangd.station.link import JobStart, Link, Message
from gangd.station.port import Port

log = structlog.get_logger("gangd.station.workers")


@dataclass
class _Worker:
    index: int
    process: trio.Process
    link: Link
    jobs: dict[int, RemoteJob] = field(default_factory=dict)
    calls: dict[int, trio.CancelScope] = field(default_factory=dict)
    recipes: set[int] = field(default_factory=set)  # recipe versions it holds
    alive: bool = True
    ready: trio.Event = field(default_factory=trio.Event)  # its imports done, serving its link
    jobs_run: int = 0


@dataclass
class JobSurroundings:
    """What the station gives every job, whichever process runs it."""

    observers: list[JobObserver]  # the port first, then the station's (the records)
    records: JobRecords | None
    power: PortPower | None
    admission: Admission


class WorkerPool:
    """`count` worker processes started with `command` (plus `--fd N`: its end of the link)."""

    def __init__(self, count: int, command: Sequence[str]) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.count = count
        self.command = list(command)
        self._workers: dict[int, _Worker] = {}
        self._spawning: dict[int, trio.Lock] = {}
        self._assigned: dict[str, int] = {}  # root port -> worker index
        self._keys = itertools.count(1)
        self._job_ids = itertools.count(1)
        self._recipe: Recipe | None = None
        self._recipe_version = 0
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._closed = trio.Event()
        self._closing = False
        self.started = 0  # worker processes started, restarts included (for /status and tests)

    # --- life cycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Holds the workers' links until `close()`; not cancellable before that, so that jobs
        cancelled at the end of the grace time can still complete their records through it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # All of them now, each ready (its imports done) before the first board: a worker
            # started at a board's arrival would add a process start to that board's job.
            async with trio.open_nursery() as starting:
                for index in range(self.count):
                    starting.start_soon(self._start, index)
            task_status.started()
            with trio.CancelScope(shield=True):
                await self._closed.wait()

    async def close(self) -> None:
        """After the station's port tasks have ended: every worker told to quit and reaped."""
        self._closing = True
        for worker in list(self._workers.values()):
            if worker.alive:
                worker.link.tell(("quit",))
        with trio.move_on_after(10):
            for worker in list(self._workers.values()):
                await worker.process.wait()
        for worker in self._workers.values():
            if worker.process.returncode is None:
                log.error("worker process did not quit: killed", worker=worker.index, pid=worker.process.pid)
                worker.process.kill()
                await worker.process.wait()
            await worker.link.aclose()
        self._closed.set()

    def stop(self) -> None:
        """No new steps in any worker's jobs (the station is stopping)."""
        self._stopping = True
        for worker in self._workers.values():
            if worker.alive:
                worker.link.tell(("stopping",))

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "worker": worker.index,
                "pid": worker.process.pid,
                "alive": worker.alive,
                "jobs": len(worker.jobs),
                "jobs_run": worker.jobs_run,
                "root_ports": sorted(r for r, i in self._assigned.items() if i == worker.index),
            }
            for worker in sorted(self._workers.values(), key=lambda w: w.index)
        ]

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers.values() if worker.alive]

    def job(self, port: Port, event: PortEvent, recipe: Recipe, around: JobSurroundings) -> RemoteJob:
        return RemoteJob(self, port, event, recipe, around, next(self._job_ids))

    # --- the workers --------------------------------------------------------------------------

    def index_of(self, path: str) -> int:
        """The worker of the port's root port (assigned at its first job, round robin)."""
        domain = root_port(path)
        if domain not in self._assigned:
            self._assigned[domain] = len(self._assigned) % self.count
        return self._assigned[domain]

    async def _worker_for(self, path: str) -> _Worker:
        index = self.index_of(path)
        async with self._spawning.setdefault(index, trio.Lock()):
            worker = self._workers.get(index)
            if worker is None or not worker.alive:
                worker = self._workers[index] = await self._spawn(index)
            return worker

    async def _start(self, index: int) -> None:
        async with self._spawning.setdefault(index, trio.Lock()):
            worker = self._workers[index] = await self._spawn(index)
        await worker.ready.wait()

    async def _spawn(self, index: int) -> _Worker:
        assert self._nursery is not None, "WorkerPool.run() first"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await trio.lowlevel.open_process(
                [*self.command, "--fd", str(theirs.fileno()), "--worker", str(index)], pass_fds=(theirs.fileno(),)
            )
        finally:
            theirs.close()
        link = Link(trio.SocketStream(trio.socket.from_stdlib_socket(ours)))
        worker = _Worker(index, process, link)
        self.started += 1
        log.info("worker process started", worker=index, pid=process.pid)
        self._nursery.start_soon(link.run_sender)
        self._nursery.start_soon(self._read, worker)
        if self._stopping:
            link.tell(("stopping",))
        return worker

    def recipe_version(self, recipe: Recipe) -> int:
        if recipe is not self._recipe:
            self._recipe, self._recipe_version = recipe, self._recipe_version + 1
        return self._recipe_version

    async def _read(self, worker: _Worker) -> None:
        """The worker's messages until its link ends; then its jobs end `stopped`."""
        with trio.CancelScope(shield=True):
            while (message := await worker.link.receive()) is not None:
                self._dispatch(worker, message)
            worker.alive = False
            worker.ready.set()
            worker.link.finish()
            with trio.move_on_after(5):
                await worker.process.wait()
            how = _exit_text(worker.process.returncode)
            for scope in worker.calls.values():
                scope.cancel()
            for job in list(worker.jobs.values()):
                await job.lost(f"the worker process running this job {how}")
            if worker.jobs or not self._closing:
                log.log(
                    30 if self._stopping else 40,
                    "worker process ended",
                    worker=worker.index,
                    pid=worker.process.pid,
                    how=how,
                )

    def _dispatch(self, worker: _Worker, message: Message) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready.set()
        elif kind == "note":
            _, key, name, args = message
            job = worker.jobs.get(key)
            if job is not None:
                job.note(name, args)
        elif kind == "call":
            _, call_id, key, name, args = message
            job = worker.jobs.get(key)
            scope = worker.calls[call_id] = trio.CancelScope(shield=True)
            assert self._nursery is not None
            self._nursery.start_soon(self._serve_call, worker, call_id, job, name, args, scope)
        elif kind == "cancel-call":
            scope = worker.calls.pop(message[1], trio.CancelScope())
            scope.cancel()
        elif kind == "done":
            _, key, result, rebooting, received, unread, attached = message
            job = worker.jobs.pop(key, None)
            if job is not None:
                job.done(result, rebooting, received, unread, attached)
        else:
            log.error("unknown message from a worker skipped", worker=worker.index, kind=kind)

    async def _serve_call(
        self, worker: _Worker, call_id: int, job: RemoteJob | None, name: str, args: tuple, scope: trio.CancelScope
    ) -> None:
        with scope:
            try:
                if job is None:
                    raise RuntimeError(f"{name}: the job has ended")
                value = await job.serve(name, args, lambda: worker.link.tell(("waiting", call_id)))
                reply: Message = ("reply", call_id, True, value)
            except Exception as exc:
                reply = ("reply", call_id, False, _portable(exc))
            worker.link.tell(reply)
        worker.calls.pop(call_id, None)


class RemoteJob:
    """A board's job run by a worker process, as the station's port task sees it."""

    def __init__(
        self, pool: WorkerPool, port: Port, event: PortEvent, recipe: Recipe, around: JobSurroundings, job_id: int
    ) -> None:
        self.pool = pool
        self.port = port
        self.event = event
        self.recipe = recipe
        self.around = around
        self.events = Observers(around.observers)
        self.result = JobResult(job_id, port.path, port.label, event.serial, "success")
        self.rebooting = False
        self.recoveries = 0  # seen in its notes: the live views show the attempt
        self._started = False  # the supervisor's observers have been told it started (its record exists)
        self._recorded = False  # ... and that it ended (its record is complete)
        self._done = trio.Event()
        self._forwarded: list[PortEvent] = []
        self._handback: tuple[int, list[PortEvent], PortEvent | None] | None = None

    @property
    def attempt(self) -> int:
        return 1 + self.recoveries

    async def run(self) -> JobResult:
        worker = await self.pool._worker_for(self.port.path)
        key = next(self.pool._keys)
        worker.jobs[key] = self
        worker.jobs_run += 1
        version = self.pool.recipe_version(self.recipe)
        if version not in worker.recipes:
            worker.link.tell(("recipe", version, self.recipe))
            worker.recipes = {version}
        start = JobStart(
            key,
            self.result.job_id,
            self.port.path,
            self.port.label,
            self.event,
            self.port.attached,
            version,
            self.around.records is not None,
            self.around.power is not None and self.around.power.available(self.port.path),
            self.pool._stopping,
            self.port.enumeration_allowance_s,
        )
        worker.link.tell(("start", start))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward, worker, key)
                await self._done.wait()
                nursery.cancel_scope.cancel()
        finally:
            if not self._done.is_set():  # cancelled: past the grace time, or a bug
                with trio.CancelScope(shield=True):
                    worker.link.tell(("cancel", key))
                    await self._done.wait()  # the job's record completes there, through us
        self._hand_back()
        return self.result

    async def _forward(self, worker: _Worker, key: int) -> None:
        """The port's events, in order, to the job's mirror of the port."""
        while True:
            event = await self.port.receive_delivered()
            self._forwarded.append(event)
            worker.link.tell(("event", key, event))

    def _hand_back(self) -> None:
        if self._handback is None:
            return
        received, unread, attached = self._handback
        self.port.unread([*unread, *self._forwarded[received:]], attached)

    # --- from the worker ------------------------------------------------------------------------

    def note(self, name: str, args: tuple) -> None:
        match name:
            case "state_changed":
                self.recoveries += args[0] == "recovering" and self.port.state != "recovering"
                self.events.state_changed(*args)
            case "step_started":
                self.events.step_started(*args)
            case "step_finished":
                self.events.step_finished(*args)
            case "progress_changed":
                self.events.progress_changed(*args)
            case "step_failed":
                self.events.step_failed(*args)
            case "bytes_written":
                self.events.bytes_written(*args)
            case "clock_fallback":
                self.events.clock_fallback()
            case "leave":
                self.around.admission.leave(*args)
            case _:
                log.error("unknown note from a worker skipped", note=name)

    async def serve(self, name: str, args: tuple, waiting: Any) -> Any:
        """A call the job made and waits on."""
        match name:
            case "job_started":
                result, images, family = args
                self.result = result
                await self.events.job_started(result, images, family)
                self._started = True
                return result.record_id
            case "job_finished":
                (result,) = args
                self.result = result
                await self.events.job_finished(result)  # shielded: the record completes
                self._recorded = True
                return None
            case "allocate":
                assert self.around.records is not None
                records = self.around.records
                values = await trio.to_thread.run_sync(lambda: records.allocate(*args))
                # Known here too: a job lost with its worker keeps its values in its record.
                self.result.board_id, self.result.board_data = args[1], values
                return values
            case "power_cycle":
                assert self.around.power is not None
                await self.around.power.power_cycle(*args)
                return None
            case "enter":
                await self.around.admission.enter(args[0], waiting)
                return None
            case "reset_turn":
                await self.around.admission.reset_turn(args[0])
                return None
        raise RuntimeError(f"unknown call from a worker: {name}")

    def done(
        self, result: JobResult, rebooting: bool, received: int, unread: list[PortEvent], attached: PortEvent | None
    ) -> None:
        self.result, self.rebooting = result, rebooting
        self._handback = (received, unread, attached)
        self._done.set()

    async def lost(self, reason: str) -> None:
        """The worker died under the job: it ends `stopped`, its record says why, its slot is free."""
        if not self._recorded:
            result = self.result
            if not self._started:
                images = [{"address": i.address, "size": len(i.data), "sha256": i.sha256} for i in self.recipe.images]
                await self.events.job_started(result, list[dict[str, object]](images), self.recipe.family.name)
            result.result, result.step, result.reason = "stopped", self.port.step, reason
            await self.events.job_finished(result)  # the port goes idle, the record completes
        self.around.admission.leave(self.port.path)
        # Whatever the job read of its port is unknown: the port holds the board last seen on it.
        last = self._forwarded[-1] if self._forwarded else None
        attached = self.port.attached if last is None else (last if last.action == ADD else None)
        self._handback = (len(self._forwarded), [], attached)
        self._done.set()


def _portable(exc: Exception) -> Exception:
    """The exception itself if it crosses the link, else its text (a call's failure is still one)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "closed its link and did not exit"
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"
