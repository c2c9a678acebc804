"""Recording one job's trace: a tap on the board's handle and its port, and a job observer.

The hot path is two calls per report from the transport (`sent`, `received`): a timestamp and an
append of the report object spsdk already made (no copy, no formatting, no I/O). Everything else,
deciding to keep the file, hashing payloads, building the pcapng, writing it and rotating old
traces, happens once, when the job has ended, in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import structlog
import trio

from gangd import __version__
from gangd.config.family import stage_of
from gangd.config.flexspi import clock_mhz, max_freq_code
from gangd.config.recipe import TraceSettings
from gangd.core.events import ADD, PortEvent
from gangd.trace import file as tf

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
        # Reports, two slots each: monotonic ns (negative: in), the report. One `extend` per report
        # (one call under the GIL, so a pair is never split) and no tuple kept per report, which
        # the garbage collector would have to walk at 64 boards.
        self._reports: list[Any] = []
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
        job.port.tap = recorder.port_event
        recorder.port_event(job.event)  # the add that started the job
        return recorder

    # --- the hot path (the port's worker thread) -----------------------------------------------

    def sent(self, report: bytes) -> None:
        self._reports.extend((time.monotonic_ns(), report))

    def received(self, report: bytes) -> None:
        self._reports.extend((-time.monotonic_ns(), report))

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
        if self.settings.keep != "all" and result.result == "success":
            return
        with trio.CancelScope(shield=True):
            try:
                self.path = await trio.to_thread.run_sync(self._write, result, limiter=_writer())
            except OSError as exc:  # a trace is a help, never a reason to fail the station
                log.warning("trace not written", dir=self.settings.dir, error=str(exc))
                return
        log.info("trace written", path=self.path)

    # --- the file ---------------------------------------------------------------------------------

    def entries(self) -> list[tf.Entry]:
        """In time order: the worker thread (reports) and the trio thread (events) append to the
        list in whatever order the scheduler lets them, their timestamps tell the true order."""
        offset, entry, reports = self._wall_offset, tf.Entry, self._reports
        out = [
            entry(tf.OUT, ns + offset, item, len(item)) if ns > 0 else entry(tf.IN, offset - ns, item, len(item))
            for ns, item in zip(reports[::2], reports[1::2], strict=True)
        ]
        out += [entry(tf.EVENT, ns + offset, event=item) for ns, item in self._events]
        out.sort(key=attrgetter("t_ns"))
        return tf.hashed(out) if self.settings.payload == "hash" else out

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

    def _write(self, result: JobResult) -> str:
        os.makedirs(self.settings.dir, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(result.started))
        name = f"{stamp}-{_safe(result.port)}-job{result.job_id}-{os.getpid()}-{result.result}{SUFFIX}"
        path = os.path.join(self.settings.dir, name)
        size = tf.write(path, self.meta(result), self.entries())
        # The directory is scanned (and rotated) only when its traces could exceed the cap: at
        # the first trace, then whenever the bytes written since the last scan reach it.
        with _sizes_lock:
            known = _dir_bytes.get(self.settings.dir)
            if known is not None and known + size <= self.settings.max_bytes:
                _dir_bytes[self.settings.dir] = known + size
                return path
            _dir_bytes[self.settings.dir] = rotate(self.settings.dir, self.settings.max_bytes, keep=path)[1]
        return path


_WRITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("gangd_trace_writer")


def _writer() -> trio.CapacityLimiter:
    """One trace written at a time: when many boards end together their files queue for one
    thread instead of contending with the boards' own threads for the interpreter."""
    try:
        return _WRITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(1)
        _WRITER.set(limiter)
        return limiter


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
