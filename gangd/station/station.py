"""The station: one task per USB port, events routed to their port, one job per board.

    board source (udev / simulated hub) ─► Station.dispatch ─► Port queue ─► port task ─► Job

A port task waits for a board to appear, runs its job, reports the result, then waits for that
board to leave before it takes the next one (a finished board that re-enumerates after its reset
is still the same board). Stopping means: no new jobs; running jobs end at their next step
boundary, and whatever is still running when the grace period ends is cancelled.

The operator may disable a port (its running job finishes, no new job starts, a board sitting
there is left alone until the port is enabled again) and acknowledge a suspect flag. Every change
of a port's state bumps `changes`, which the live views (station page, `gangd watch`) wait on.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable

import structlog
import trio

from gangd.config.family import FLASHLOADER, FamilyInfo, stage_of
from gangd.config.recipe import Recipe
from gangd.core.bus import (
    ADDRESS0_S,
    DEFAULT_BUDGET,
    Admission,
    HostControllers,
    enumeration_allowances,
    is_port_path,
    root_port,
)
from gangd.core.events import ADD, PortEvent
from gangd.core.observer import JobObserver, RecordObserver
from gangd.core.results import JobResult
from gangd.core.types import (
    BoardSource,
    JobRecords,
    JournalStatus,
    LineStatus,
    PortPower,
    RunningJob,
    StationMetrics,
)
from gangd.engine.job import Job
from gangd.station.port import Port
from gangd.station.workers import JobSurroundings, WorkerPool

log = structlog.get_logger("gangd.station.station")

HISTORY = 100  # results kept in memory for status and tests (the records keep all of them)
PASSED_MEMORY = 2_000  # boards remembered as good, for telling port faults from board faults

ResultListener = Callable[[JobResult], None]


class UnknownPort(KeyError):
    """A port named by an operator (path or label) that the station does not have."""


class Changes:
    """A version number that goes up whenever something the station shows changes.

    Waiters are woken at once; they read whatever state is current, so a burst of changes costs
    one wake-up per waiter, not one per change."""

    def __init__(self) -> None:
        self.version = 0
        self._event = trio.Event()

    def notify(self) -> None:
        self.version += 1
        self._event.set()

    async def wait(self, seen: int) -> int:
        """Returns the version as soon as it differs from `seen`."""
        while self.version == seen:
            if self._event.is_set():
                self._event = trio.Event()
            await self._event.wait()
        return self.version


class Station:
    def __init__(
        self,
        family: FamilyInfo,
        recipe: Recipe,
        ports: dict[str, str | None] | None = None,
        records: JobRecords | None = None,
        power: PortPower | None = None,
        metrics: StationMetrics | None = None,
        bandwidth_budget: int | None = DEFAULT_BUDGET,
        name: str | None = None,
        line: LineStatus | None = None,
        workers: WorkerPool | None = None,
        journal: JournalStatus | None = None,
        controllers: HostControllers | None = None,
    ) -> None:
        self.metrics = metrics
        # Which host controller each bus belongs to (sysfs on hardware): one enumeration queue each.
        self.controllers = controllers or HostControllers()
        self.workers = workers  # None: the jobs run in this process
        # Boards admitted to the flashloader stage per root port (None: admission switched off).
        self.admission = Admission(bandwidth_budget, self.controllers)
        self.family = family
        self.recipe = recipe
        self.records = records
        self.power = power
        self.configured = dict(ports or {})  # path -> label; empty means every port
        self.ports: dict[str, Port] = {}
        self.results: list[JobResult] = []  # the most recent ones only (see HISTORY)
        self.jobs_finished = 0
        self.counts: Counter[str] = Counter()
        self._recent: dict[str, deque[tuple[str | None, str]]] = {}  # port -> (board, result), last K
        self._passed: OrderedDict[str, set[str]] = OrderedDict()  # board -> ports it passed on (LRU)
        self.listeners: list[ResultListener] = []
        self.stopping = False
        self.halted: str | None = None  # why no job that needs per-board data can start now
        self.name = name  # [station] name, shown by /status
        self.line = line  # per-board data comes from the line database: is it reachable
        self.journal = journal  # does the journal take writes (no job starts that it cannot record)
        # What every job reports to besides its port: its durable record.
        self.observers: list[JobObserver] = [RecordObserver(records)] if records is not None else []
        self.changes = Changes()
        self.admission.on_change = self.changes.notify  # root-port occupancy is on the views
        self._nursery: trio.Nursery | None = None
        self._jobs_running = 0
        self._idle = trio.Event()

    # --- life cycle ---------------------------------------------------------------------------

    async def run(self, source: BoardSource, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled. `task_status.started()` fires once the coldplug scan is done."""
        async with trio.open_nursery() as supervisor:
            if self.workers is not None:  # outlives the port tasks: cancelled jobs end through it
                await supervisor.start(self.workers.run)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for path, label in self.configured.items():
                        self._add_port(path, label)
                    await nursery.start(source, self.dispatch)
                    task_status.started()
            finally:
                if self.workers is not None:
                    with trio.CancelScope(shield=True):
                        await self.workers.close()

    def stop(self) -> None:
        """No new jobs from now on; running jobs stop at their next step boundary."""
        self.stopping = True
        if self.workers is not None:
            self.workers.stop()
        self._check_idle()
        self.changes.notify()

    def _check_idle(self) -> None:
        if self.stopping and self._jobs_running == 0:
            self._idle.set()

    async def wait_jobs_done(self) -> None:
        """After stop(): returns when no job is running any more."""
        await self._idle.wait()

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        busy = sum(1 for port in self.ports.values() if port.state != "idle")
        ok, failed = self.counts["success"], self.counts["failed"]
        suspect = sum(1 for port in self.ports.values() if port.suspect)
        present = sum(1 for port in self.ports.values() if port.present)
        text = f"{len(self.ports)} ports, {present} boards present, {busy} busy; {ok} programmed, {failed} failed"
        return text + (f"; {suspect} suspect ports" if suspect else "")

    def status(self) -> dict:
        """What /status shows: each port's state, step, progress, last result and counters."""
        return {
            "station": self.name,
            "stopping": self.stopping,
            "halted": self.halted,
            "line_database": None if self.line is None else ("reachable" if self.line.available else "unreachable"),
            "journal": None if self.journal is None else (self.journal.reason or "writable"),
            "counts": dict(self.counts),
            "jobs_finished": self.jobs_finished,
            # Bandwidth domains: flashloader-stage boards admitted now, against the budget.
            "root_ports": self.admission.status(self.ports),
            # Enumeration queues: per host controller, the boards a job waits for off the bus
            # (booting, or queued for the kernel's one-at-a-time enumeration).
            "controllers": self.controller_status(),
            "workers": None if self.workers is None else self.workers.status(),
            "ports": [
                {
                    "port": port.path,
                    "label": port.label,
                    "root_port": root_port(port.path),
                    "state": port.shown_state,
                    "step": port.step,
                    "progress": round(port.progress, 3),
                    "suspect": port.suspect,
                    "disabled": port.disabled,
                    "board": port.attached.serial if port.attached else None,
                    "last_result": port.last_result,
                    "last_reason": port.last_reason,
                    "counts": dict(port.counts),
                }
                for port in sorted(self.ports.values(), key=lambda p: p.path)
            ],
        }

    def controller_status(self) -> dict[str, dict]:
        """Per host controller: its root ports, its ports, and the ports whose board a job waits
        for off the bus (`returning`), with the kernel's time to enumerate them one at a time."""
        out: dict[str, dict] = {}
        for controller, roots in self.controllers.layout(self.ports).items():
            returning = sorted(
                port.path
                for port in self.ports.values()
                if self.controllers.of(port.path) == controller and port.state != "idle" and not port.present
            )
            out[controller] = {
                "root_ports": sorted(roots),
                "ports": sum(roots.values()),
                "returning": returning,
                "queue_s": round(len(returning) * ADDRESS0_S, 3),
                # finished boards whose reset waits for these flashloaders (gangd/core/scheduling.py)
                "resets_held": sorted(p for p in self.admission.holding if self.controllers.of(p) == controller),
            }
        return out

    # --- the operator's controls ------------------------------------------------------------------

    def port_named(self, name: str) -> Port:
        """A port by its path (`1-1.3`) or its label (`A3`)."""
        port = self.ports.get(name) or next((p for p in self.ports.values() if p.label == name), None)
        if port is None:
            raise UnknownPort(name)
        return port

    def set_enabled(self, name: str, enabled: bool) -> Port:
        """Disable: the running job finishes, no new job starts and a board plugged in is left
        alone. Enable: a board waiting on the port gets its job."""
        port = self.port_named(name)
        if port.disabled == (not enabled):
            return port
        port.disabled = not enabled
        log.warning(
            "port enabled by the operator" if enabled else "port disabled by the operator",
            port=port.path,
            label=port.label,
        )
        return port

    def acknowledge(self, name: str) -> Port:
        """The operator has seen the suspect flag (and moved the boards off, or fixed the port):
        the flag clears and the port is judged afresh from its next boards."""
        port = self.port_named(name)
        self._recent.pop(port.path, None)
        if port.suspect:
            port.suspect = False
            log.warning("suspect flag acknowledged by the operator", port=port.path, label=port.label)
        return port

    # --- routing ------------------------------------------------------------------------------

    def dispatch(self, event: PortEvent) -> None:
        self._follow_bus(event)
        port = self.ports.get(event.port)
        if port is None:
            if self.configured or not is_port_path(event.port):
                log.warning("event on a port outside the configuration skipped", port=event.port, ids=event.ids)
                return
            port = self._add_port(event.port, None)
        if event.action == ADD and stage_of(self.family, event) is None:
            log.warning("device with unexpected ids skipped", port=event.port, ids=event.ids)
            return
        port.deliver(event)

    def _follow_bus(self, event: PortEvent) -> None:
        """Every event, on any port of the bus (configured or not), tells admission what occupies
        its root port: a flashloader-stage device with a HID node holds bandwidth until it leaves."""
        if event.action != ADD:
            self.admission.device_left(event.port)
            return
        flashloader = (
            self.family.rom_protocol == "sdp"  # MCU-bootloader ROMs have no separate flashloader stage
            and stage_of(self.family, event) == FLASHLOADER
            and event.devnode is not None  # refused by the bus: it holds no bandwidth
        )
        self.admission.device_seen(event.port, flashloader)

    def _add_port(self, path: str, label: str | None) -> Port:
        port = Port(path, label, self.family, self.metrics.port(label or path) if self.metrics else None)
        port.on_change = self.changes.notify
        self.ports[path] = port
        allowances = enumeration_allowances([*self.configured, *self.ports], self.controllers)
        for other in self.ports.values():  # a port more on a controller: its others may queue longer
            other.enumeration_allowance_s = allowances[other.path]
        self.changes.notify()
        assert self._nursery is not None
        self._nursery.start_soon(self._port_task, port, name=f"port {path}")
        return port

    async def _port_task(self, port: Port) -> None:
        event: PortEvent | None = None
        while True:
            if event is None:
                event = await port.next_event()
                if event.action != ADD:
                    event = None
                    continue
            if self.stopping:
                log.info("board ignored: gangd is stopping", port=port.path)
                event = None
                continue
            if port.disabled:
                event = await self._hold(port, event)
                continue
            if self.journal is not None and not self.journal.writable:
                event = await self._wait_for_journal(port, event)
                continue  # the board on the port, now that its job's start can be recorded
            if self.recipe.board_data and self.line is not None and not self.line.available:
                await self._wait_for_line(port)
                continue  # the same board, now that the line answers (or gangd is stopping)
            if self.halted and not self._data_available():
                log.warning("board left alone: no per-board data to give it", port=port.path, reason=self.halted)
                port.state_changed("disabled")
                port.last_result, port.last_reason = "stopped", self.halted
                event = None
                continue
            self._jobs_running += 1
            try:
                job = port.job = self._new_job(port, event)
                result = await job.run()
            finally:
                port.job = None
                self._jobs_running -= 1
                self._check_idle()
            if result.not_started:
                continue  # untouched, unrecorded: the same board waits for the journal
            if result.line_down and self.line is not None:
                self.line.failed(result.line_down)
            if result.halt:
                self.halted = result.halt
                log.error("no new jobs: per-board data exhausted", reason=result.halt)
            self._remember(result)
            port.last_job = result
            port.finished(result.result, result.reason, result.duration_s, result.started + result.duration_s)
            self._judge_ports()
            for listener in self.listeners:
                listener(result)
            finished_serial, event = event.serial, None
            if result.board_waits:
                # Its values could not be recorded: not finished, it stays for another job (the
                # listeners above, the operator among them, were told it waits). As it is now: in
                # its flashloader, or gone, or replaced while the job ended.
                event = port.attached
                continue
            if job.rebooting:
                event = await self._watch_reboot(port, finished_serial)
                if event is not None:
                    continue
            newcomer = port.attached
            if result.result == "removed":
                # That board left; whatever is on the port now (a newcomer, or the same board
                # plugged back in) is a board to program, and the next add starts it otherwise.
                event = newcomer
                continue
            if newcomer is not None and newcomer.serial and finished_serial and newcomer.serial != finished_serial:
                event = newcomer  # swapped in while the last job ran: it is a new board, start on it
                continue
            # The finished board stays until someone takes it out; only then is the port free.
            while port.attached is not None:
                await port.next_event()

    def _new_job(self, port: Port, event: PortEvent) -> RunningJob:
        """The board's job, in this process or in its root port's worker process."""
        if self.workers is not None:
            around = JobSurroundings([port, *self.observers], self.records, self.power, self.admission)
            return self.workers.job(port, event, self.recipe, around)
        return Job(
            port,
            event,
            self.recipe,
            lambda: self.stopping,
            observers=[port, *self.observers],
            records=self.records,
            power=self.power,
            admission=self.admission,
        )

    async def _watch_reboot(self, port: Port, serial: str | None) -> PortEvent | None:
        """After a job that ended once its reset was acknowledged: the board leaves and comes back
        rebooted while no job holds the port. Its return is logged, a board that never returns is
        logged (not failed); another board appearing instead is returned, to be programmed. The
        reboot waits its turn in its controller's enumeration queue like any other enumeration:
        past the deadline alone, a board that comes back would look like a new board to program."""
        with trio.move_on_after(self.recipe.deadlines.reset_replug_s + port.enumeration_allowance_s):
            while True:
                event = await port.next_event()
                if event.action != ADD:
                    continue
                if serial and event.serial and event.serial != serial:
                    return event
                log.debug("board rebooted after its job", port=port.path, serial=serial)
                return None
        log.info("board did not reappear after its reset (logged, not failed)", port=port.path, serial=serial)
        return None

    async def _hold(self, port: Port, event: PortEvent | None) -> PortEvent | None:
        """While the port is disabled: follow its board (in, out, another one) without touching it.
        Returns the board on the port once it is enabled again, or None when it is empty."""
        if event is not None:
            log.info("board left alone: the port is disabled", port=port.path, serial=event.serial)
        while port.disabled:
            with trio.CancelScope() as scope:
                port.wake = scope
                try:
                    latest = await port.next_event()
                finally:
                    port.wake = None
            if not scope.cancelled_caught:
                event = latest if latest.action == ADD else None
        return event

    async def _wait_for_line(self, port: Port) -> None:
        """The line database is away: this port's board waits (untouched) until it answers."""
        assert self.line is not None
        reason = f"waiting for the line database to give per-board data ({self.line.reason})"
        log.warning("board waits: no per-board data while the line database is away", port=port.path, reason=reason)
        self.halted = reason
        port.state_changed("disabled")
        port.last_result, port.last_reason = "stopped", reason
        self.changes.notify()
        await self.line.wait_available()
        if self.halted == reason:
            self.halted = None
        if port.state == "disabled" and port.last_reason == reason:
            port.state_changed("idle")
        log.info("line database back: the board is programmed", port=port.path)

    async def _wait_for_journal(self, port: Port, event: PortEvent | None) -> PortEvent | None:
        """The journal takes no writes: this port's board waits, untouched, until it does, while
        the port follows it (taken out, plugged back, another one). The port's tile and /status
        say why. Returns the board on the port once the journal is writable, or None."""
        journal = self.journal
        assert journal is not None
        reason = journal.reason or "the journal has records still to write"
        log.warning("board waits: its job could not be recorded", port=port.path, reason=reason)
        port.state_changed("disabled")
        port.last_result, port.last_reason = "stopped", reason
        self.changes.notify()

        async def follow() -> None:
            nonlocal event
            while True:
                latest = await port.next_event()  # cancelled between events, never inside one
                event = latest if latest.action == ADD else None

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await journal.wait_writable()
            nursery.cancel_scope.cancel()
        if port.state == "disabled" and port.last_reason == reason:
            port.state_changed("idle")
        log.info("journal writable again: the board is programmed", port=port.path, board=event is not None)
        return event

    def _data_available(self) -> bool:
        """Per-board data was exhausted: is there a value again (someone extended the list)?"""
        if self.records is None or not any(entry.source == "list" for entry in self.recipe.board_data):
            return True
        if not self.records.has_values(self.recipe.board_data):
            return False
        self.halted = None
        for port in self.ports.values():
            if port.state == "disabled" and port.last_reason and port.last_result == "stopped":
                port.state_changed("idle")
        return True

    def _remember(self, result: JobResult) -> None:
        """Bounded memory of results: a line runs for days, the daemon must not grow with it."""
        self.jobs_finished += 1
        self.counts[result.result] += 1
        self.results.append(result)
        if len(self.results) > 2 * HISTORY:
            del self.results[:-HISTORY]
        k = self.recipe.recovery.suspect_after
        recent = self._recent.setdefault(result.port, deque(maxlen=k))
        if recent.maxlen != k:  # a reload changed suspect_after
            recent = self._recent[result.port] = deque(recent, maxlen=k)
        recent.append((result.identity, result.result))
        if result.result == "success" and result.identity:
            self._passed.setdefault(result.identity, set()).add(result.port)
            self._passed.move_to_end(result.identity)
            while len(self._passed) > PASSED_MEMORY:
                self._passed.popitem(last=False)

    def _judge_ports(self) -> None:
        """Flag a port whose last K boards all failed there while each of them passed elsewhere.

        Judged again after every result on any port: the proof that a board is good usually comes
        after it failed on the suspect port, when the operator tries it in another one.
        """
        k = self.recipe.recovery.suspect_after
        for port in self.ports.values():
            recent = self._recent.get(port.path, ())
            suspect = len(recent) == k and all(
                result == "failed" and board and self._passed.get(board, set()) - {port.path}
                for board, result in recent
            )
            if suspect != port.suspect:
                port.suspect = suspect
                if suspect:
                    log.warning(
                        "suspect port: its boards fail here and pass elsewhere",
                        port=port.path,
                        label=port.label,
                        boards=[board for board, _ in recent],
                    )
