"""One board's job: the engine that runs its plan under deadlines, with automatic recovery.

The plan (`plan.py`) says what to do; this engine says how: each step under its deadline in the
port's own worker thread, failures classified by one table (`recovery.py`) and answered by it:

- transient flash failures of an image's group are diagnosed by mechanism (`diagnosis.py`: a
  marginal read path lowers the flash clock for the rest of the job, write protection escalates to
  a power cycle) and the group runs again from its erase;
- board failures reset the board (or power-cycle its port, or ask for a replug) and the plan runs
  again from the ROM; permanent ones end the job with the reason and the code's explanation.

spsdk is synchronous, so every call to the board runs in a worker thread (`trio.to_thread`),
through a capacity limiter of one that belongs to this port alone: no global limit, no shared
handle. When a step's deadline fires the thread is abandoned and its handle aborted
(`FdHidDevice.abort` wakes the blocked poll), so a hung board costs its own port only. Everything
the job does is reported to its observers (`observer.py`): the port, the metrics, the records.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import structlog
import trio
from spsdk.exceptions import SPSDKConnectionError, SPSDKError
from spsdk.mboot.error_codes import stringify_status_code
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError
from spsdk.sdp.exceptions import SdpCommandError, SdpConnectionError

from gangd.config.flexspi import clock_mhz, max_freq_code
from gangd.config.recipe import Recipe
from gangd.core.bus import Admission
from gangd.core.errors import (
    BoardRemoved,
    CommandFailed,
    DataUnavailable,
    JobError,
    JobStopped,
    ReplugTimeout,
    StepTimeout,
)
from gangd.core.events import PortEvent
from gangd.core.observer import JobObserver, RecordObserver
from gangd.core.port import Port, stage_of
from gangd.core.results import Attempt, JobResult, StepTiming
from gangd.core.types import PortPower
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine import recovery, secure_boot, steps
from gangd.engine.diagnosis import FlashDiagnostician
from gangd.engine.explain import explained
from gangd.engine.steps import retry_flash
from gangd.io.transport import DeviceGoneError, FdHidDevice, TransportAborted, mboot_client, sdp_client
from gangd.io.transport.fd_device import WrongDeviceError
from gangd.service.records import RecordStore
from gangd.trace.recorder import TraceRecorder

_job_ids = itertools.count(1)

# How long a job waits, after a transport error, for the remove event that tells "pulled" apart
# from "stopped answering".
REMOVAL_GRACE_S = 1.0
# Handles are opened with a long spsdk timeout: the step deadline, not spsdk, decides when to stop.
HANDLE_TIMEOUT_MS = 600_000


class Job:
    def __init__(
        self,
        port: Port,
        event: PortEvent,
        recipe: Recipe,
        stopping: Callable[[], bool],
        records: RecordStore | None = None,
        power: PortPower | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.id = next(_job_ids)
        self.admission, self.admitted = admission or Admission(None), False
        self.port = port
        self.event = event
        self.recipe = recipe
        self.plan = p.plan(recipe)
        self.stopping = stopping
        self.records = records
        self.power = power
        self.observers: list[JobObserver] = [port] + ([RecordObserver(records)] if records is not None else [])
        self.limiter = trio.CapacityLimiter(1)
        self.device: FdHidDevice | None = None
        self.mboot: Any = None
        self.attempt = 1
        # Write protection gets one power cycle per job: if it survives that, it survives everything.
        self.cycled_for_protection = False
        # The option words in force: a diagnosis may lower their clock for the rest of the job.
        self.option_words = recipe.option_words
        self.diagnostician = FlashDiagnostician(recipe.family.name)
        # The minimal write: each image group's blank sectors, and the groups retried after a
        # failure (written whole from then on).
        self.blank: dict[int, list[bool]] = {}
        self.presumed_blank: set[int] = set()  # groups whose blank check sampled, not read (steps.py)
        # The job's progress before the running step and that step's share: a data phase tells
        # its own progress inside that share (steps.progress_of).
        self.progress_span = (0.0, 0.0)
        self.full_groups: set[int] = set()
        self.rebooting = False  # reset without a wait-reboot step: the station watches for its return
        self.result = JobResult(self.id, port.path, port.label, event.serial, "success")
        self.log = structlog.get_logger("gangd.engine.job")
        self.trace = TraceRecorder.attach(self)  # None unless the recipe has [trace]

    def _tell(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            getattr(observer, method)(*args)

    # --- the job as a whole ---------------------------------------------------------------------

    async def run(self) -> JobResult:
        # Bound for every line of this job, including spsdk's, in this task and its worker threads.
        with structlog.contextvars.bound_contextvars(
            port=self.port.path, label=self.port.label, job=self.id, serial=self.event.serial
        ):
            return await self._run()

    async def _run(self) -> JobResult:
        result = self.result
        result.started, started = time.time(), time.monotonic()
        images = [{"address": i.address, "size": len(i.data), "sha256": i.sha256} for i in self.recipe.images]
        for observer in self.observers:
            await observer.job_started(result, images, self.recipe.family.name)
        finished = False
        try:
            await self._attempts()
            finished = True
        except JobError as error:
            result.result, result.step, result.reason, result.status = (
                error.result,
                error.step,
                error.reason,
                error.status,
            )
            if error.result == "failed" and error.status is not None:
                result.reason = f"{error.reason} | {explained(error.status, self.recipe.family.name)}"
            finished = True
        finally:
            if not finished:  # cancelled (shutdown past its grace time) or a bug: never "success"
                result.result, result.step = "stopped", self.port.step
                result.reason = "gangd stopped the job in the middle of this step"
            self._close()
            # The admission ends with the job; a flashloader still on the bus keeps its slot
            # counted (the station follows the bus) until it leaves the flashloader stage.
            self.release_slot()
            result.duration_s = time.monotonic() - started
            with trio.CancelScope(shield=True):  # the record is written even while shutting down
                for observer in self.observers:
                    await observer.job_finished(result)
        # The one summary line of the job.
        self.log.info(
            "job finished",
            result=result.result,
            step=result.step,
            reason=result.reason,
            status=result.status,
            attempts=len(result.attempts),
            record=result.record_id,
            flash_mhz=result.flash_clock_mhz,
            marginal=result.marginal or None,
            diagnoses=[d.finding for d in result.diagnoses] or None,
            steps={s.name: round(s.seconds, 3) for s in result.steps},
            duration_s=round(result.duration_s, 3),
        )
        return result

    async def _attempts(self) -> None:
        policy = self.recipe.recovery
        event = self.event
        while True:
            try:
                await self._run_plan(event)
                return
            except (BoardRemoved, JobStopped, DataUnavailable):
                raise
            except JobError as error:
                klass = recovery.classify(error.status, error.kind)
                if klass == recovery.POWER and (self.cycled_for_protection or not self._may_power_cycle()):
                    klass = recovery.PERMANENT  # cycled once already, or not allowed: nothing else clears it
                if klass == recovery.PERMANENT or self.attempt >= policy.max_attempts:
                    self._note(error, klass, recovery.NONE)
                    if klass != recovery.PERMANENT:
                        error.reason += f" (gave up after {self.attempt} attempts)"
                    raise
                event = await self._recover_board(error, klass)
                await trio.sleep(policy.backoff(self.attempt))
                self.attempt += 1
                self._tell("state_changed", "programming")

    async def _recover_board(self, error: JobError, klass: str) -> PortEvent:
        """Bring the board back to its ROM: reset over USB, else power-cycle the port, else give up."""
        deadlines = self.recipe.deadlines
        self._tell("state_changed", "recovering")
        self.release_slot()  # the board goes back to its ROM (or is given up)
        reset_may_help = klass != recovery.POWER and error.kind not in ("lost-contact", "bandwidth")
        if self.mboot is not None and reset_may_help and not isinstance(error, (StepTimeout, ReplugTimeout)):
            try:
                await self._step("recover-reset", deadlines.command_s, self.mboot.reset, 0, False)
                self._close()
                self._note(error, klass, recovery.RESET)
                return await self.port.wait_for_stage(
                    p.Stage.ROM, deadlines.replug_s, "recover-reset", self.event.serial
                )
            except (BoardRemoved, JobStopped, DataUnavailable):
                raise
            except JobError:
                pass  # the board does not take a reset: try its port's power
        self._close()
        if self.power is not None and self._may_power_cycle():
            self.cycled_for_protection |= klass == recovery.POWER
            self._note(error, klass, recovery.POWER_CYCLE)
            self.log.warning("power-cycling the port", step=error.step)
            self._tell("state_changed", "disabled")
            await self.power.power_cycle(self.port.path)
            self._tell("state_changed", "recovering")
            return await self.port.wait_for_stage(p.Stage.ROM, deadlines.replug_s, "power-cycle", self.event.serial)
        self._note(error, klass, recovery.REPLUG)
        if error.kind == "bandwidth":
            error.reason += "; its port's power cannot be switched from here: replug it once the root port has room"
        else:
            error.reason += "; the board stopped answering and cannot be reset from here: replug it"
        raise error

    def _may_power_cycle(self) -> bool:
        return self.recipe.recovery.power_cycle and self.power is not None and self.power.available(self.port.path)

    def _note(self, error: JobError, klass: str, action: str) -> None:
        self.result.attempts.append(Attempt(self.attempt, error.step, error.status, error.reason, klass, action))
        self._tell("step_failed", error.step, klass, action)
        self.log.warning(
            "step failed",
            step=error.step,
            status=error.status,
            reason=error.reason,
            recovery_class=klass,
            action=action,
            attempt=self.attempt,
        )

    # --- the plan -------------------------------------------------------------------------------

    async def _run_plan(self, event: PortEvent) -> None:
        """Run the plan's steps for a board that arrived with `event`; progress is the weight of
        the steps done over the weight of the steps this board needs (fwupd-style)."""
        stage = p.Stage.FLASHLOADER if stage_of(self.recipe.family, event) == p.Stage.FLASHLOADER else p.Stage.ROM
        steps = p.steps_from(self.plan, stage)
        self.result.fuses = []  # what this run read and burned
        planned = sum(step.weight for step in steps)
        retries = dict.fromkeys({step.group for step in steps if step.group is not None}, 0)
        index = 0
        while index < len(steps):
            step = steps[index]
            self.progress_span = (sum(s.weight for s in steps[:index]) / planned, step.weight / planned)
            try:
                event = await self._execute(step, event)
            except (BoardRemoved, JobStopped, DataUnavailable):
                raise
            except JobError as error:
                if step.group is None or recovery.classify(error.status, error.kind) != recovery.TRANSIENT:
                    raise
                if retries[step.group] >= self.recipe.recovery.transient_retries:
                    raise
                retries[step.group] += 1
                self.full_groups.add(step.group)
                await retry_flash(self, step, error, retries[step.group])
                index = p.group_start(steps, index)
                continue
            index += 1
            self._tell("progress_changed", sum(s.weight for s in steps[:index]) / planned)

    async def _execute(self, step: p.Step, event: PortEvent) -> PortEvent:
        """One step; returns the board's current event (a wait brings a new one)."""
        match step:
            case p.LoadFlashloader():
                await steps.admit(self, event)
                await self._step(step.name, step.deadline_s, lambda: ops.load_flashloader(self._client(event), step))
            case p.WaitStage(required=True):
                self._tell("state_changed", "waiting-replug")
                event = await self._wait_stage(step, self.event.serial)
                self._tell("state_changed", "programming")
            case p.WaitStage():
                # Seeing it come back proves it rebooted; a board that boots its application
                # without USB never does, which is not a failure.
                self._tell("state_changed", "waiting-replug")
                self._tell("step_started", step.name)
                started = time.monotonic()
                with trio.move_on_after(step.deadline_s):
                    try:
                        await self.port.wait_for_stage(step.target, step.deadline_s, step.name, self.event.serial)
                    except BoardRemoved:
                        pass  # programmed and reset; the operator was just quick to take it out
                self._record_timing(step.name, time.monotonic() - started)
            case p.Open():
                await steps.admit(self, event)
                self.mboot = await self._step(step.name, step.deadline_s, lambda: ops.open_mboot(self._client(event)))
            case p.Identify():
                board_id = await self._step(step.name, step.deadline_s, ops.identify, self.mboot)
                if self.result.board_id and board_id != self.result.board_id:
                    # Between two attempts someone swapped the board: the rest is not this job's board.
                    raise BoardRemoved(self.port.path, step.name, f"a different board ({board_id}) is on the port now")
                self.result.board_id = board_id
                structlog.contextvars.bind_contextvars(board=board_id)
            case p.ConfigureMemory():
                await self._step(step.name, step.deadline_s, ops.configure, self.mboot, step, self.option_words)
            case p.BlankCheck():
                await steps.blank_check(self, step)
            case p.Erase():
                await steps.erase(self, step)
            case p.Write():
                await steps.write(self, step)
                code = max_freq_code(self.option_words)
                self.result.flash_clock_mhz = clock_mhz(self.recipe.family.name, code) if code is not None else None
            case p.Verify():
                await self._step(
                    step.name,
                    step.deadline_s,
                    ops.verify,
                    self.mboot,
                    step.image,
                    step.memory_id,
                    steps.progress_of(self),
                )
            case p.TakeBoardData():
                await steps.take_board_data(self, step)
            case p.WriteBoardData():
                await steps.write_board_data(self, step)
            case p.Fuses():
                await steps.burn_fuses(self, step.name, step.deadline_s, step.fuses)
            case p.SecureBootStage():
                event = await secure_boot.run(self, step, event)
            case p.Reset():
                await self._step(step.name, step.deadline_s, self.mboot.reset, 0, False)
                self._close()
                # Without a wait-reboot step the station watches for the board's return.
                self.rebooting = not any(isinstance(s, p.WaitStage) and not s.required for s in self.plan)
            case _:
                raise AssertionError(f"no engine for step {step!r}")
        return event

    def release_slot(self) -> None:
        if self.admitted:
            self.admitted = False
            self.admission.leave(self.port.path)

    async def _wait_stage(self, step: p.WaitStage, serial: str | None) -> PortEvent:
        self._tell("step_started", step.name)
        started = time.monotonic()
        event = await self.port.wait_for_stage(step.target, step.deadline_s, step.name, serial)
        self._record_timing(step.name, time.monotonic() - started)
        return event

    def _client(self, event: PortEvent):
        """spsdk's client for the stage the event names, on this board's own handle."""
        stage = stage_of(self.recipe.family, event)
        device = self._open_device(event)
        return (
            sdp_client(device)
            if stage == p.Stage.ROM and self.recipe.family.rom_protocol == "sdp"
            else mboot_client(device)
        )

    @property
    def _configure_step(self) -> p.ConfigureMemory | None:
        return next((step for step in self.plan if isinstance(step, p.ConfigureMemory)), None)

    def _open_device(self, event: PortEvent) -> FdHidDevice:
        """This board's own handle: the exact node udev named for its port, checked against its ids."""
        self._close()
        if event.devnode is None:
            raise DeviceGoneError(f"port {event.port}: the event named no device node")
        self.device = FdHidDevice(
            event.devnode, timeout=HANDLE_TIMEOUT_MS, expected_ids=(event.vid, event.pid), recorder=self.trace
        )
        self.device.open()
        return self.device

    def _close(self) -> None:
        if self.device is not None:
            self.device.abort()  # wakes an abandoned worker thread, if one is still blocked
            self.device.dispose()
            self.device = None
            self.mboot = None

    # --- running one step -----------------------------------------------------------------------

    async def _step(
        self, name: str, deadline_s: float, fn: Callable[..., Any], *args: Any, check_stopping: bool = True
    ) -> Any:
        if check_stopping and self.stopping():
            raise JobStopped(self.port.path, name, "gangd is stopping; ended before this step")
        self._tell("step_started", name)
        started = time.monotonic()
        self.log.debug("step started", step=name, attempt=self.attempt, deadline_s=round(deadline_s, 3))
        try:
            with trio.fail_after(deadline_s):
                value = await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True, limiter=self.limiter)
        except trio.TooSlowError:
            if self.device is not None:
                self.device.abort()
            raise StepTimeout(
                self.port.path, name, f"no answer within the {deadline_s:g} s deadline", kind="timeout"
            ) from None
        except (McuBootCommandError, SdpCommandError) as exc:
            raise CommandFailed(self.port.path, name, self._describe(exc), exc.error_value) from exc
        except ops.VerifyMismatch as exc:
            raise JobError(self.port.path, name, str(exc), kind="verify-mismatch") from exc
        except WrongDeviceError as exc:
            raise JobError(self.port.path, name, f"not the expected board: {exc}", kind="wrong-device") from exc
        except (
            DeviceGoneError,
            TransportAborted,
            SPSDKConnectionError,
            McuBootConnectionError,
            SdpConnectionError,
        ) as exc:
            raise await self._lost(name, exc) from exc
        except SPSDKError as exc:
            raise JobError(self.port.path, name, str(exc)) from exc
        except Exception as exc:
            self.log.warning("malformed reply", step=name, error=repr(exc))
            raise JobError(self.port.path, name, f"malformed reply from the board: {exc!r}", kind="malformed") from exc
        self._record_timing(name, time.monotonic() - started)
        return value

    def _record_timing(self, name: str, seconds: float) -> None:
        self.result.steps.append(StepTiming(name, seconds, self.attempt))
        self._tell("step_finished", name, seconds)

    @staticmethod
    def _describe(exc: McuBootCommandError | SdpCommandError) -> str:
        if isinstance(exc, McuBootCommandError):
            return f"{exc.cmd_name} failed: {stringify_status_code(exc.error_value)}"
        return str(exc)

    async def _lost(self, step: str, exc: Exception) -> JobError:
        """Was the board pulled out, or did it stop answering while still plugged in?"""
        with trio.move_on_after(REMOVAL_GRACE_S):
            while self.port.attached is not None:
                await self.port.next_event()
        if self.port.attached is None:
            return BoardRemoved(self.port.path, step, "the board was removed from the port")
        return JobError(self.port.path, step, f"lost contact with the board: {exc}", kind="lost-contact")
