"""One board's provisioning job: the recipe's steps under deadlines, with automatic recovery.

spsdk is synchronous, so every call to the board runs in a worker thread (`trio.to_thread`),
through a capacity limiter of one that belongs to this port alone: no global limit, no shared
handle, no lock across ports. When a step's deadline fires the thread is abandoned and its handle
aborted (`FdHidDevice.abort` wakes the blocked poll), so a hung board costs its own port only.

Failures are classified by one table (`recovery.py`): transient flash failures are diagnosed by
mechanism (`diagnosis.py`: a marginal read path lowers the flash clock for the rest of the job,
write protection escalates to a power cycle) and the image is programmed again from its erase;
board ones reset the board (or power-cycle its port, or ask the operator to replug it) and rerun
the flow from the ROM; permanent ones end the job with the reason and the code's explanation.
Every failure, diagnosis and recovery taken, and the flash clock used, is kept in the job's record.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio
from spsdk.exceptions import SPSDKConnectionError, SPSDKError
from spsdk.mboot.error_codes import stringify_status_code
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError
from spsdk.mboot.properties import PropertyTag
from spsdk.sdp.exceptions import SdpCommandError, SdpConnectionError

from . import recovery
from .diagnosis import PROTECTED, READ_PATH, Diagnosis, FlashDiagnostician
from .errors import BoardRemoved, CommandFailed, JobError, JobStopped, ReplugTimeout, StepTimeout
from .explain import one_line
from .flexspi import clock_mhz, max_freq_code, with_max_freq
from .fuses import BURN, conflict_reason, decide
from .hotplug.events import PortEvent
from .port import FLASHLOADER, ROM, Port, stage_of
from .recipe import Image, Recipe
from .records import RecordStore
from .transport import DeviceGoneError, FdHidDevice, TransportAborted, mboot_client, sdp_client
from .transport.fd_device import WrongDeviceError

_job_ids = itertools.count(1)

# How long a job waits, after a transport error, for the remove event that tells "pulled" apart
# from "stopped answering".
REMOVAL_GRACE_S = 1.0
# Handles are opened with a long spsdk timeout: the step deadline, not spsdk, decides when to stop.
HANDLE_TIMEOUT_MS = 600_000
# Progress weights of the steps (fwupd-style), for status displays.
STEP_WEIGHTS = {"load-flashloader": 10, "wait-replug": 5, "open": 1, "identify": 1, "configure-memory": 2,
                "erase": 15, "write": 40, "verify": 20, "fuses": 3, "reset": 3}  # fmt: skip


@dataclass
class StepTiming:
    name: str
    seconds: float
    attempt: int = 1


@dataclass
class Attempt:
    attempt: int
    step: str
    status: int | None
    error: str
    klass: str
    action: str

    def to_record(self) -> dict:
        return {"attempt": self.attempt, "step": self.step, "status": self.status, "error": self.error,
                "class": self.klass, "action": self.action}  # fmt: skip


@dataclass
class JobResult:
    job_id: int
    port: str
    label: str
    serial: str | None
    result: str  # success | failed | removed | stopped
    step: str | None = None
    reason: str | None = None
    status: int | None = None
    board_id: str | None = None
    record_id: int | None = None
    started: float = 0.0
    duration_s: float = 0.0
    steps: list[StepTiming] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    fuses: list[dict] = field(default_factory=list)
    flash_clock_mhz: int | None = None  # the read clock the images were programmed and verified at
    diagnoses: list[Diagnosis] = field(default_factory=list)
    marginal: bool = False  # programmed below the recipe's clock: a marginal board, flagged

    @property
    def identity(self) -> str | None:
        return self.board_id or self.serial


class VerifyMismatch(Exception):
    pass


class Job:
    def __init__(
        self,
        port: Port,
        event: PortEvent,
        recipe: Recipe,
        stopping: Callable[[], bool],
        records: RecordStore | None = None,
        power=None,
    ) -> None:
        self.id = next(_job_ids)
        self.port = port
        self.event = event
        self.recipe = recipe
        self.stopping = stopping
        self.records = records
        self.power = power
        self.limiter = trio.CapacityLimiter(1)
        self.device: FdHidDevice | None = None
        self.mboot = None
        self.attempt = 1
        # Write protection gets one power cycle per job: if it survives that, it survives everything.
        self.cycled_for_protection = False
        # The option words in force: a diagnosis may lower their clock for the rest of the job.
        self.option_words = recipe.option_words
        self.diagnostician = FlashDiagnostician(recipe.family.name)
        self.result = JobResult(self.id, port.path, port.label, event.serial, "success")
        self.log = structlog.get_logger("gangd.job")

    # --- the job as a whole ---------------------------------------------------------------------

    async def run(self) -> JobResult:
        # Bound for every line of this job, including spsdk's, in this task and its worker threads.
        with structlog.contextvars.bound_contextvars(port=self.port.path, label=self.port.label, job=self.id,
                                                     serial=self.event.serial):  # fmt: skip
            return await self._run()

    async def _run(self) -> JobResult:
        result = self.result
        result.started, started = time.time(), time.monotonic()
        self.port.state = "programming"
        self.port.progress = 0.0
        if self.records is not None:
            result.record_id = await trio.to_thread.run_sync(self._record_start)
        finished = False
        try:
            await self._attempts()
            finished = True
        except JobError as error:
            result.result, result.step, result.reason, result.status = error.result, error.step, error.reason, error.status
            if error.result == "failed" and error.status is not None:
                result.reason = f"{error.reason} | {_explained(error.status, self.recipe.family.name)}"
            finished = True
        finally:
            if not finished:  # cancelled (shutdown past its grace time) or a bug: never "success"
                result.result, result.step = "stopped", self.port.step
                result.reason = "gangd stopped the job in the middle of this step"
            self._close()
            result.duration_s = time.monotonic() - started
            with trio.CancelScope(shield=True):  # the record is written even while shutting down
                if self.records is not None:
                    await trio.to_thread.run_sync(self._record_end)
            self.port.step = None
            self.port.state = "idle"
        # The one summary line of the job.
        self.log.info("job finished", result=result.result, step=result.step, reason=result.reason,
                      status=result.status, attempts=len(result.attempts), record=result.record_id,
                      flash_mhz=result.flash_clock_mhz, marginal=result.marginal or None,
                      diagnoses=[d.finding for d in result.diagnoses] or None,
                      steps={s.name: round(s.seconds, 3) for s in result.steps},
                      duration_s=round(result.duration_s, 3))  # fmt: skip
        return result

    async def _attempts(self) -> None:
        policy = self.recipe.recovery
        event = self.event
        while True:
            try:
                await self._flow(event)
                return
            except (BoardRemoved, JobStopped):
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
                action, event = await self._recover_board(error, klass)
                await trio.sleep(policy.backoff(self.attempt))
                self.attempt += 1
                self.port.state = "programming"

    async def _recover_board(self, error: JobError, klass: str) -> tuple[str, PortEvent]:
        """Bring the board back to its ROM: reset over USB, else power-cycle the port, else give up."""
        deadlines = self.recipe.deadlines
        self.port.state = "recovering"
        reset_may_help = klass != recovery.POWER and error.kind != "lost-contact"
        if self.mboot is not None and reset_may_help and not isinstance(error, (StepTimeout, ReplugTimeout)):
            try:
                await self._step("recover-reset", deadlines.command_s, self.mboot.reset, 0, False)
                self._close()
                self._note(error, klass, recovery.RESET)
                return recovery.RESET, await self.port.wait_for_stage(
                    ROM, deadlines.replug_s, "recover-reset", self.event.serial
                )
            except (BoardRemoved, JobStopped):
                raise
            except JobError:
                pass  # the board does not take a reset: try its port's power
        self._close()
        if self._may_power_cycle():
            self.cycled_for_protection |= klass == recovery.POWER
            self._note(error, klass, recovery.POWER_CYCLE)
            self.log.warning("power-cycling the port", step=error.step)
            self.port.state = "disabled"
            await self.power.power_cycle(self.port.path)
            self.port.state = "recovering"
            return recovery.POWER_CYCLE, await self.port.wait_for_stage(
                ROM, deadlines.replug_s, "power-cycle", self.event.serial
            )
        self._note(error, klass, recovery.REPLUG)
        error.reason += "; the board stopped answering and cannot be reset from here: replug it"
        raise error

    def _may_power_cycle(self) -> bool:
        return self.recipe.recovery.power_cycle and self.power is not None and self.power.available(self.port.path)

    def _note(self, error: JobError, klass: str, action: str) -> None:
        attempt = Attempt(self.attempt, error.step, error.status, error.reason, klass, action)
        self.result.attempts.append(attempt)
        self.port.step_failed(error.step, klass, action)
        self.log.warning("step failed", step=error.step, status=error.status, reason=error.reason,
                         recovery_class=klass, action=action, attempt=self.attempt)  # fmt: skip

    # --- the flow -------------------------------------------------------------------------------

    async def _flow(self, event: PortEvent) -> None:
        recipe, deadlines = self.recipe, self.recipe.deadlines
        if stage_of(recipe.family, event) == ROM:
            await self._step("load-flashloader", deadlines.load_flashloader_s, self._load_flashloader, event)
            self.port.state = "waiting-replug"
            event = await self._wait_stage("wait-replug", FLASHLOADER, deadlines.replug_s)
            self.port.state = "programming"
        self.mboot = mboot = await self._step("open", deadlines.command_s, self._open_mboot, event)
        board_id = await self._step("identify", deadlines.command_s, self._identify, mboot)
        if self.result.board_id and board_id != self.result.board_id:
            # Between two attempts someone swapped the board: the rest is not this job's board.
            raise BoardRemoved(self.port.path, "identify", f"a different board ({board_id}) is on the port now")
        self.result.board_id = board_id
        structlog.contextvars.bind_contextvars(board=board_id)
        await self._step("configure-memory", deadlines.command_s, self._configure, mboot)
        for image in recipe.images:
            await self._program(mboot, image)
        code = max_freq_code(self.option_words)
        self.result.flash_clock_mhz = clock_mhz(recipe.family.name, code) if code is not None else None
        if recipe.fuses.policy != "never" and recipe.fuses.words:
            await self._fuses(mboot)
        if recipe.final_action == "reset":
            await self._step("reset", deadlines.command_s, mboot.reset, 0, False)
            self._close()
            # Seeing it come back proves it rebooted; a board that boots its application without
            # USB never does, which is not a failure.
            self.port.state = "waiting-replug"
            with trio.move_on_after(deadlines.reset_replug_s):
                try:
                    await self.port.wait_for_stage(ROM, deadlines.reset_replug_s, "reset", self.event.serial)
                except BoardRemoved:
                    pass  # programmed and reset; the operator was just quick to take it out

    async def _program(self, mboot, image: Image) -> None:
        """Erase, write and verify one image. A flash failure is retried (bounded) after a diagnosis
        by mechanism or a re-configure, always from the erase: the flashloader never programs a
        page that is not erased, so a half-written image must be erased again before it is re-written."""
        deadlines, policy = self.recipe.deadlines, self.recipe.recovery
        for retry in itertools.count():
            try:
                await self._step("erase", deadlines.erase_s(image.erase_length), mboot.flash_erase_region,
                                 image.address, image.erase_length, 0)  # fmt: skip
                await self._step("write", deadlines.data_s(len(image.data)), mboot.write_memory, image.address, image.data)
                self.port.wrote(len(image.data))
                if self.recipe.verify:
                    await self._step("verify", deadlines.data_s(len(image.data)), self._verify, mboot, image)
                return
            except (BoardRemoved, JobStopped):
                raise
            except JobError as error:
                if recovery.classify(error.status, error.kind) != recovery.TRANSIENT or retry >= policy.transient_retries:
                    raise
                self.port.state = "recovering"
                await trio.sleep(policy.backoff(retry + 1))
                if recovery.is_flash_readback(error.status, error.kind):
                    await self._diagnose(mboot, image, error)
                else:
                    self._note(error, recovery.TRANSIENT, recovery.RECONFIGURE)
                    await self._step("configure-memory", deadlines.command_s, self._configure, mboot)
                self.port.state = "programming"

    async def _diagnose(self, mboot, image: Image, error: JobError) -> None:
        """Tell a marginal read path from write protection (diagnosis.py) and act on the finding."""
        deadlines = self.recipe.deadlines
        length = image.erase_length if error.step == "erase" else len(image.data)
        # Each call is one configure or one read of the range: one data deadline covers either.
        run = functools.partial(self._step, "diagnose", deadlines.data_s(length))
        configure = functools.partial(self._configure_words, mboot)
        diagnosis = await self.diagnostician.diagnose(run, configure, mboot.read_memory, self.option_words,
                                                      image.address, length, error.step, error.status)  # fmt: skip
        self.result.diagnoses.append(diagnosis)
        self.log.warning("flash diagnosed", step=error.step, status=error.status, finding=diagnosis.finding,
                         failed_mhz=diagnosis.failed_mhz, mhz=diagnosis.mhz, detail=diagnosis.detail)  # fmt: skip
        if diagnosis.finding == PROTECTED:
            raise JobError(self.port.path, error.step, f"flash write-protected (block-protect bits set): "
                           f"{diagnosis.detail}; {error.reason}", error.status, kind="write-protected")  # fmt: skip
        if diagnosis.finding == READ_PATH:
            if self.recipe.quality_marginal == "reject":
                raise JobError(self.port.path, error.step, f"marginal board rejected ([quality] marginal = reject): "
                               f"{diagnosis.detail}", error.status, kind="marginal-board")  # fmt: skip
            assert diagnosis.code is not None  # a clock ladder exists only for option words
            self.option_words = with_max_freq(self.option_words, diagnosis.code)
            self.result.marginal = True
            self.port.clock_fallback()
            self._note(error, recovery.TRANSIENT, recovery.LOWER_CLOCK)
        else:
            self._note(error, recovery.TRANSIENT, recovery.RECONFIGURE)

    async def _fuses(self, mboot) -> None:
        """Read every word, judge them all, then burn (shielded from cancellation) and read back."""
        plan, deadlines = self.recipe.fuses, self.recipe.deadlines
        readings = await self._step("fuses", deadlines.command_s, self._read_fuses, mboot, [w.index for w in plan.words])
        decisions = decide(plan, readings)
        self.result.fuses = [{"name": d.word.name, "index": d.word.index, "before": d.current,
                              "wanted": d.word.value, "action": d.action} for d in decisions]  # fmt: skip
        reason = conflict_reason(decisions)
        if reason:
            raise JobError(self.port.path, "fuses", reason, kind="fuse-conflict")
        burns = [d for d in decisions if d.action == BURN]
        if not burns:
            return
        # Once the first bit is burned the rest must follow and be read back: no deadline-free
        # cancellation, no shutdown, may interrupt it (the step's own deadline still applies).
        with trio.CancelScope(shield=True):
            after = await self._step("fuses-burn", deadlines.command_s + len(burns), self._burn, mboot, burns,
                                     check_stopping=False)  # fmt: skip
        for entry in self.result.fuses:
            entry["after"] = after.get(entry["index"], entry["before"])
        wrong = [d for d in burns if after[d.word.index] != d.word.value]
        if wrong:
            names = ", ".join(f"{d.word.name}=0x{after[d.word.index]:08x}" for d in wrong)
            raise JobError(self.port.path, "fuses-burn", f"read-back after burning differs: {names}", kind="fuse-readback")

    async def _wait_stage(self, step: str, stage: str, timeout_s: float) -> PortEvent:
        self.port.step = step
        started = time.monotonic()
        event = await self.port.wait_for_stage(stage, timeout_s, step, self.event.serial)
        self.result.steps.append(StepTiming(step, time.monotonic() - started, self.attempt))
        self._progress(step)
        return event

    # --- blocking bodies, run in the port's worker thread ---------------------------------------

    def _load_flashloader(self, event: PortEvent) -> None:
        sdp = sdp_client(self._open_device(event))
        sdp.open()
        sdp.write_file(self.recipe.flashloader_address, self.recipe.flashloader)
        sdp.jump_and_run(self.recipe.jump_address)

    def _open_mboot(self, event: PortEvent):
        mboot = mboot_client(self._open_device(event))
        mboot.open()
        return mboot

    @staticmethod
    def _identify(mboot) -> str | None:
        values = mboot.get_property(PropertyTag.UNIQUE_DEVICE_IDENT)
        return "".join(f"{v:08x}" for v in reversed(values)) if values else None

    def _configure(self, mboot) -> None:
        self._configure_words(mboot, self.option_words)

    def _configure_words(self, mboot, option_words: tuple[int, ...]) -> None:
        recipe = self.recipe
        for offset, word in enumerate(option_words):
            mboot.fill_memory(recipe.option_address + 4 * offset, 4, word)
        mboot.configure_memory(recipe.option_address, recipe.memory_id)

    @staticmethod
    def _verify(mboot, image: Image) -> None:
        back = mboot.read_memory(image.address, len(image.data))
        if back != image.data:
            first = next((i for i, (a, b) in enumerate(zip(back, image.data)) if a != b), len(back))
            raise VerifyMismatch(f"read-back differs from the image at 0x{image.address + first:08x}")

    @staticmethod
    def _read_fuses(mboot, indexes: list[int]) -> dict[int, int]:
        return {index: mboot.efuse_read_once(index) for index in indexes}

    @staticmethod
    def _burn(mboot, burns) -> dict[int, int]:
        after = {}
        for decision in burns:
            mboot.efuse_program_once(decision.word.index, decision.bits_to_burn)
            after[decision.word.index] = mboot.efuse_read_once(decision.word.index)
        return after

    def _open_device(self, event: PortEvent) -> FdHidDevice:
        """This board's own handle: the exact node udev named for its port, checked against its ids."""
        self._close()
        if event.devnode is None:
            raise DeviceGoneError(f"port {event.port}: the event named no device node")
        self.device = FdHidDevice(event.devnode, timeout=HANDLE_TIMEOUT_MS, expected_ids=(event.vid, event.pid))
        self.device.open()
        return self.device

    def _close(self) -> None:
        if self.device is not None:
            self.device.abort()  # wakes an abandoned worker thread, if one is still blocked
            self.device.dispose()
            self.device = None
            self.mboot = None

    # --- running one step -----------------------------------------------------------------------

    async def _step(self, name: str, deadline_s: float, fn: Callable[..., Any], *args: Any,
                    check_stopping: bool = True) -> Any:  # fmt: skip
        if check_stopping and self.stopping():
            raise JobStopped(self.port.path, name, "gangd is stopping; ended before this step")
        self.port.step = name
        started = time.monotonic()
        self.log.debug("step started", step=name, attempt=self.attempt, deadline_s=round(deadline_s, 3))
        try:
            with trio.fail_after(deadline_s):
                value = await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True, limiter=self.limiter)
        except trio.TooSlowError:
            if self.device is not None:
                self.device.abort()
            raise StepTimeout(self.port.path, name, f"no answer within the {deadline_s:g} s deadline", kind="timeout") from None
        except (McuBootCommandError, SdpCommandError) as exc:
            raise CommandFailed(self.port.path, name, self._describe(exc), exc.error_value) from exc
        except VerifyMismatch as exc:
            raise JobError(self.port.path, name, str(exc), kind="verify-mismatch") from exc
        except WrongDeviceError as exc:
            raise JobError(self.port.path, name, f"not the expected board: {exc}", kind="wrong-device") from exc
        except (DeviceGoneError, TransportAborted, SPSDKConnectionError, McuBootConnectionError,
                SdpConnectionError) as exc:  # fmt: skip
            raise await self._lost(name, exc) from exc
        except SPSDKError as exc:
            raise JobError(self.port.path, name, str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - a reply spsdk could not parse must cost this board only
            self.log.warning("malformed reply", step=name, error=repr(exc))
            raise JobError(self.port.path, name, f"malformed reply from the board: {exc!r}", kind="malformed") from exc
        seconds = time.monotonic() - started
        self.result.steps.append(StepTiming(name, seconds, self.attempt))
        self.port.step_done(name, seconds)
        self._progress(name)
        return value

    def _progress(self, finished_step: str) -> None:
        """Weighted progress of this attempt (fwupd-style), for the port's status."""
        done = {s.name for s in self.result.steps if s.attempt == self.attempt} | {finished_step}
        planned = [step for step in STEP_WEIGHTS if step != "fuses" or self.recipe.fuses.words]
        total = sum(STEP_WEIGHTS[step] for step in planned)
        self.port.progress = sum(STEP_WEIGHTS[step] for step in planned if step in done) / total

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

    # --- the record -----------------------------------------------------------------------------

    def _record_start(self) -> int:
        images = [{"address": i.address, "size": len(i.data), "sha256": i.sha256} for i in self.recipe.images]
        return self.records.start(port=self.port.path, label=self.port.label, serial=self.event.serial,
                                  family=self.recipe.family.name, images=images, started=self.result.started)  # fmt: skip

    def _record_end(self) -> None:
        r = self.result
        self.records.update(
            r.record_id, finished=time.time(), result=r.result, step=r.step, reason=r.reason, status=r.status,
            board_id=r.board_id,
            steps=[{"name": s.name, "seconds": round(s.seconds, 4), "attempt": s.attempt} for s in r.steps],
            attempts=[a.to_record() for a in r.attempts], fuses=r.fuses, flash_clock_mhz=r.flash_clock_mhz,
            marginal=int(r.marginal), diagnoses=[d.to_record() for d in r.diagnoses],
        )  # fmt: skip


def _explained(status: int, family: str) -> str:
    try:
        return one_line(status, family)
    except KeyError:
        return f"status {status} is unknown to spsdk"
