"""Recording one job's trace: a tap on the board's handle and its port, and a job observer.

The hot path is the transport's call per report into the job's `Conversation` (conversation.py):
a timestamp and the report appended to the job's list, nothing else. Everything else,
deciding to keep the file, hashing payloads, building the pcapng, writing it and rotating old
traces, happens once, when the job has ended, in the writer thread; a job whose trace is not
kept (keep = "failed", a good board) costs no encoding at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio

from gangd import __version__
from gangd.config.family import stage_of
from gangd.config.flexspi import clock_mhz, max_freq_code
from gangd.config.recipe import TraceSettings
from gangd.core.events import ADD, PortEvent
from gangd.trace import file as tf
from gangd.trace.conversation import Conversation, Recording, when

if TYPE_CHECKING:
    from gangd.core.results import JobResult
    from gangd.engine.job import Job

log = structlog.get_logger("gangd.trace")
SUFFIX = ".pcapng"


class TraceRecorder:
    """One job's recording. Attached by the job (`attach`), fed by its handle and its port."""

    def __init__(self, settings: TraceSettings, job: Job) -> None:
        self.settings = settings
        self.job = job
        self.family = job.recipe.family
        # The reports (the tap the board's handles feed), at most max_job_bytes of them, and no
        # more than a whole trace directory may hold.
        self.conversation = Conversation(min(settings.max_job_bytes, settings.max_bytes))
        self._events: list[tuple[int, dict[str, Any]]] = []  # (monotonic ns, event), trio thread
        # Wall-clock time of monotonic 0, for the file's timestamps: the hot path reads only the
        # monotonic clock (which NTP cannot step), once per report.
        self._wall_offset = time.time_ns() - time.monotonic_ns()
        self.path: str | None = None  # the file written, once the job has ended (if kept)

    @classmethod
    def attach(cls, job: Job) -> TraceRecorder | None:
        settings = job.recipe.trace
        if settings is None:
            return None
        recorder = cls(settings, job)
        job.events.observers.append(recorder)
        job.ctx.recorder = recorder.conversation
        job.port.tap = recorder.port_event
        recorder.port_event(job.event)  # the add that started the job
        return recorder

    # --- events (trio thread) ---------------------------------------------------------------------

    def port_event(self, event: PortEvent) -> None:
        stage = stage_of(self.family, event)
        protocol = "sdp" if stage == "rom" and self.family.rom_protocol == "sdp" else "mboot"
        self._note(
            {
                "event": event.action,
                "port": event.port,
                "vid": event.vid,
                "pid": event.pid,
                "serial": event.serial,
                "devnode": event.devnode,
                "stage": stage,
                "protocol": protocol if event.action == ADD else None,
            }
        )

    def _note(self, event: dict[str, Any]) -> None:
        self._events.append((time.monotonic_ns(), event))

    # --- JobObserver ------------------------------------------------------------------------------

    async def job_started(self, result: JobResult, images: list[dict[str, Any]], family: str) -> None:
        pass

    def state_changed(self, state: str) -> None:
        if state == "disabled":  # the job is about to cycle the port's power (engine/recoveries.py)
            self._note({"event": "power-cycle"})

    def step_started(self, step: str) -> None:
        self._note({"event": "step", "step": step})

    def step_finished(self, step: str, seconds: float) -> None:
        pass

    def progress_changed(self, fraction: float) -> None:
        pass

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        self._note({"event": "step-failed", "step": step, "class": code_class, "action": action})

    def bytes_written(self, count: int) -> None:
        pass

    def clock_fallback(self) -> None:
        words = self.job.ctx.option_words  # already lowered by the diagnosis (engine/steps.py)
        code = max_freq_code(words)
        mhz = clock_mhz(self.family.name, code) if code is not None else None
        self._note({"event": "clock-fallback", "option_words": [f"0x{w:08x}" for w in words], "flash_mhz": mhz})

    async def job_finished(self, result: JobResult) -> None:
        if self.job.port.tap == self.port_event:
            self.job.port.tap = None
        recording = self.conversation.close()  # the job's handles are closed: nothing more comes
        if (self.settings.keep != "all" and result.result == "success") or result.not_started:
            return  # a job that never started said nothing to its board
        with trio.CancelScope(shield=True):
            try:
                self.path = await _writer().write(partial(self._write, result, recording))
            except OSError as exc:  # a trace is a help, never a reason to fail the station
                _count_dropped()
                log.warning("trace not written", dir=self.settings.dir, error=str(exc), dropped=traces_dropped())
                return
        log.info("trace written", path=self.path)

    # --- the file (the writer thread) -------------------------------------------------------------

    def meta(self, result: JobResult) -> dict[str, Any]:
        return {
            "version": __version__,
            "job": result.job_id,
            "port": result.port,
            "bus": _bus(result.port),
            "label": result.label,
            "serial": result.serial,
            "board": result.board_id,
            "family": self.family.name,
            "rom_protocol": self.family.rom_protocol,
            "result": result.result,
            "step": result.step,
            "reason": result.reason,
            "status": result.status,
            "flash_mhz": result.flash_clock_mhz,
            "marginal": result.marginal,
            "payload": self.settings.payload,
            "started": result.started,
        }

    def _write(self, result: JobResult, recording: Recording) -> str:
        os.makedirs(self.settings.dir, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(result.started))
        name = f"{stamp}-{_safe(result.port)}-job{result.job_id}-{os.getpid()}-{result.result}{SUFFIX}"
        path = os.path.join(self.settings.dir, name)
        parts = tf.encode(
            self.meta(result),
            recording.segments,
            placed(self._events, recording),
            clock_ns=self._wall_offset,
            hash_payload=self.settings.payload == "hash",
        )
        size = tf.write_file(path, parts)
        # The directory is scanned (and rotated) only when its traces could exceed the cap: at
        # the first trace, then whenever the bytes written since the last scan reach it.
        with _sizes_lock:
            known = _dir_bytes.get(self.settings.dir)
            if known is not None and known + size <= self.settings.max_bytes:
                _dir_bytes[self.settings.dir] = known + size
                return path
            _dir_bytes[self.settings.dir] = rotate(self.settings.dir, self.settings.max_bytes, keep=path)[1]
        return path


def placed(events: list[tuple[int, dict[str, Any]]], recording: Recording) -> list[tuple[int, int, dict[str, Any]]]:
    """The events (`(monotonic ns, event)`), and a `dropped` event where the recording let
    reports go, each with the number of reports before it, as `file.encode` takes them: in time
    order, a report before an event of the same nanosecond. The handle's calls (reports) and
    the port's task (events) each kept their own order; their timestamps tell the true one."""
    events = list(events)
    dropped = recording.dropped
    if dropped is not None:
        gap = {"event": "dropped", "reports": dropped.reports, "bytes": dropped.size, "cap": dropped.cap_bytes}
        events.insert(bisect_right(events, dropped.at_ns, key=lambda e: e[0]), (dropped.at_ns, gap))
    out = []
    segments = recording.segments
    seen, segment = 0, 0  # reports in the segments before `segment`
    stamps: list[int] | None = None  # the times of `segment`'s reports
    for t_ns, event in events:
        while segment < len(segments) and (not segments[segment] or when(segments[segment][-2]) <= t_ns):
            seen += len(segments[segment]) // 2
            segment, stamps = segment + 1, None
        if stamps is None:
            stamps = segments[segment][::2] if segment < len(segments) else []
        out.append((seen + bisect_right(stamps, t_ns, key=when), t_ns, event))
    return out


class _Pending:
    __slots__ = ("write", "done", "path", "error")

    def __init__(self, write: Callable[[], str]) -> None:
        self.write = write
        self.done = trio.Event()
        self.path = ""
        self.error: Exception | None = None


class _Writer:
    """The traces of one trio run, written one at a time in one worker thread: whatever queued
    while a batch was being written goes to the thread as the next batch. Boards that end
    together then cost one thread hop between them rather than one each (a hop, with its
    limiter, is ~0.1 ms of CPU: as much as the tap costs a board of 150 reports), and their
    files do not contend with the boards' own threads for the interpreter."""

    def __init__(self) -> None:
        self._queue: list[_Pending] = []
        self._ready = trio.Event()
        trio.lowlevel.spawn_system_task(self._run, name="gangd trace writer")

    async def write(self, write: Callable[[], str]) -> str:
        pending = _Pending(write)
        self._queue.append(pending)
        self._ready.set()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.path

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            batch, self._queue = self._queue, []
            with trio.CancelScope(shield=True):  # traces being written are finished
                await trio.to_thread.run_sync(_write_all, batch)
            for pending in batch:
                pending.done.set()


def _write_all(batch: list[_Pending]) -> None:
    global _writer_cpu_s
    started = time.thread_time()
    for pending in batch:
        try:
            pending.path = pending.write()
        except Exception as exc:  # the job that asked raises it (system tasks must not)
            pending.error = exc
    spent = time.thread_time() - started
    with _writer_cpu_lock:  # one writer per trio run, and a process may have several runs (tests)
        _writer_cpu_s += spent


_writer_cpu_s = 0.0
_writer_cpu_lock = threading.Lock()
_dropped = 0


def _count_dropped() -> None:
    global _dropped
    _dropped += 1  # the trio thread only


def traces_dropped() -> int:
    """Traces this process could not write (trace directory full or unwritable): the metric."""
    return _dropped


def writer_cpu_s() -> float:
    """CPU seconds this process's trace writers have spent building, writing and rotating trace
    files, on their own thread's clock: what tracing costs off the boards' hot path, measured
    apart from everything else the process does (the benchmark's tracing rows)."""
    return _writer_cpu_s


_WRITER: trio.lowlevel.RunVar[_Writer] = trio.lowlevel.RunVar("gangd_trace_writer")


def _writer() -> _Writer:
    try:
        return _WRITER.get()
    except LookupError:
        writer = _Writer()
        _WRITER.set(writer)
        return writer


_dir_bytes: dict[str, int] = {}  # trace directory -> bytes its traces held at the last scan, plus since
_sizes_lock = threading.Lock()


def rotate(directory: str, max_bytes: int, keep: str | None = None) -> tuple[list[str], int]:
    """Remove the oldest traces until the directory's traces fit in `max_bytes` (never `keep`);
    returns the files removed and the bytes the traces left hold."""
    files = []
    for name in os.listdir(directory):
        if name.endswith(SUFFIX):
            path = os.path.join(directory, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(path)
                files.append((st.st_mtime_ns, name, path, st.st_size))
    files.sort()
    total = sum(f[3] for f in files)
    removed = []
    for _, _, path, size in files:
        if total <= max_bytes:
            break
        if path == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
        total -= size
    return removed, total


def _bus(port: str) -> int:
    head = port.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)
