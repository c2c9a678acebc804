"""Prometheus metrics, on a registry gangd creates and passes in (never the global one).

Naming follows Prometheus practice: `gangd_` prefix, base units (seconds, bytes), `_total` for
counters, and bounded labels only: `port` (the configured label, else the port path), `result`,
`step`, `code_class`, `action`. Never a serial number or board id: those live in the records.
Every series of a configured port exists at zero before its first board.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gangd import __version__
from gangd.core.types import PortState, Result
from gangd.engine import recovery
from gangd.trace import recorder

RESULTS = tuple(Result)
STEPS = (
    "load-flashloader",
    "wait-replug",
    "open",
    "identify",
    "configure-memory",
    "erase",
    "write",
    "verify",
    "diagnose",
    "fuses",
    "fuses-burn",
    "reset",
    "recover-reset",
)
# Each stage's outcomes (engine/secure_boot.py), bounded: no board or key appears in a label.
SECURE_BOOT_OUTCOMES = {
    "srk": ("burned", "equal", "different"),
    "proof": ("passed", "failed"),
    "close": ("burned", "already-closed", "refused"),
    "confirm": ("passed", "failed"),
    "locks": ("burned", "equal"),
}
CODE_CLASSES = recovery.CLASSES
ACTIONS = recovery.ACTIONS
PORT_STATES = tuple(PortState)

BOARD_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.boards = Counter("gangd_boards", "Boards finished, by port and result.", ["port", "result"], registry=r)
        self.board_duration = Histogram(
            "gangd_board_duration_seconds",
            "Time from a board's first event to its result, by port.",
            ["port"],
            buckets=BOARD_BUCKETS,
            registry=r,
        )
        self.step_duration = Histogram(
            "gangd_step_duration_seconds",
            "Duration of successful steps, by step.",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.step_failures = Counter(
            "gangd_step_failures",
            "Failed steps, by port, step and recovery class of the status code.",
            ["port", "step", "code_class"],
            registry=r,
        )
        self.recoveries = Counter(
            "gangd_recoveries", "Recovery actions taken, by port and action.", ["port", "action"], registry=r
        )
        self.port_state = Enum(
            "gangd_port_state", "What each port is doing.", ["port"], states=list(PORT_STATES), registry=r
        )
        self.last_success = Gauge(
            "gangd_last_success_timestamp_seconds",
            "Unix time of the last board programmed on the port.",
            ["port"],
            registry=r,
        )
        self.bytes_written = Counter(
            "gangd_bytes_written", "Image bytes written to boards, by port.", ["port"], registry=r
        )
        self.suspect = Gauge(
            "gangd_port_suspect", "1 when the port's boards fail there and pass elsewhere.", ["port"], registry=r
        )
        self.clock_fallbacks = Counter(
            "gangd_flash_clock_fallbacks",
            "Boards whose flash read path was marginal "
            "at the recipe's clock and were programmed at a lower one, by port.",
            ["port"],
            registry=r,
        )
        self.secure_boot = Counter(
            "gangd_secure_boot",
            "Secure-boot stage outcomes ([secure_boot]), by stage and result.",
            ["stage", "result"],
            registry=r,
        )
        for stage, results in SECURE_BOOT_OUTCOMES.items():
            for result in results:
                self.secure_boot.labels(stage, result)
        self.journal_writable = Gauge(
            "gangd_journal_writable",
            "1 while the station's journal (records.sqlite) takes writes; 0: no new job starts.",
            registry=r,
        )
        self.journal_writable.set(1)
        self.journal_held = Gauge(
            "gangd_journal_held_records",
            "Finished jobs whose records are held in memory until the journal takes writes again.",
            registry=r,
        )
        r.register(_TracesDropped())
        self.build = Info("gangd_build", "gangd version.", registry=r)
        self.build.info({"version": __version__})
        self.started = Gauge("gangd_start_time_seconds", "Unix time gangd started.", registry=r)
        self.started.set(time.time())
        for step in STEPS:
            self.step_duration.labels(step)

    def add_port(self, port: str) -> None:
        """Pre-create every series of a port so dashboards see zeros, not gaps."""
        for result in RESULTS:
            self.boards.labels(port, result)
        self.board_duration.labels(port)
        for step in STEPS:
            for code_class in CODE_CLASSES:
                self.step_failures.labels(port, step, code_class)
        for action in ACTIONS:
            self.recoveries.labels(port, action)
        self.port_state.labels(port).state("idle")
        self.last_success.labels(port)
        self.bytes_written.labels(port)
        self.clock_fallbacks.labels(port)
        self.suspect.labels(port).set(0)

    def port(self, label: str) -> PortSeries:
        """One port's series (created at zero), as the station's port reports to them."""
        self.add_port(label)
        return PortSeries(self, label)


class _TracesDropped(Collector):
    """gangd_traces_dropped_total, read from the trace recorder's count when scraped (the trace
    floor knows no metrics). Our choice: traces dropped in worker processes are in their logs."""

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "gangd_traces_dropped",
            "Field traces not written (trace directory full or unwritable); the jobs went on.",
            value=recorder.traces_dropped(),
        )


class PortSeries:
    """The metrics of one port (`gangd.core.types.PortMetrics`)."""

    def __init__(self, metrics: Metrics, label: str) -> None:
        self.metrics, self.label = metrics, label

    def state(self, shown: str) -> None:
        self.metrics.port_state.labels(self.label).state(shown)

    def suspect(self, value: bool) -> None:
        self.metrics.suspect.labels(self.label).set(int(value))

    def step_finished(self, step: str, seconds: float) -> None:
        self.metrics.step_duration.labels(step).observe(seconds)

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        self.metrics.step_failures.labels(self.label, step, code_class).inc()
        if action != "none":
            self.metrics.recoveries.labels(self.label, action).inc()

    def clock_fallback(self) -> None:
        self.metrics.clock_fallbacks.labels(self.label).inc()

    def bytes_written(self, count: int) -> None:
        self.metrics.bytes_written.labels(self.label).inc(count)

    def board_finished(self, result: str, duration_s: float, at: float) -> None:
        self.metrics.boards.labels(self.label, result).inc()
        self.metrics.board_duration.labels(self.label).observe(duration_s)
        if result == "success":
            self.metrics.last_success.labels(self.label).set(at)

    def secure_boot(self, stage: str, result: str) -> None:
        self.metrics.secure_boot.labels(stage, result).inc()
