"""One board's job: the engine that runs its plan under deadlines, with automatic recovery.

The plan (`plan.py`) says what to do; this engine says in which order and what happens on a
failure, classified by one table (`recovery.py`):

- transient flash failures of an image's group are diagnosed by mechanism (`diagnosis.py`: a
  marginal read path lowers the flash clock for the rest of the job, write protection escalates to
  a power cycle) and the group runs again from its erase;
- board failures bring the board back to its ROM with the registered recovery strategies
  (`recoveries.py`: reset, power cycle, the operator's replug) and the plan runs again from there;
  permanent ones end the job with the reason and the code's explanation.

The steps' bodies (`steps.py`, `secure_boot.py`) and the strategies see the job only through its
step context (`context.py`): the board's handle, the step runner with its deadlines, the record.
Everything the job does is reported to its observers (`gangd.core.observer`), which whoever runs
the job attaches: the port (its state, progress and metrics), the records.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

import structlog
import trio

from gangd.config.family import stage_of
from gangd.config.flexspi import clock_mhz, max_freq_code
from gangd.config.geometry import INTERNAL_FLASH
from gangd.config.recipe import Recipe
from gangd.core.bus import Admission
from gangd.core.errors import BoardRemoved, DataUnavailable, JobError, JobStopped, JournalUnwritable
from gangd.core.events import PortEvent
from gangd.core.observer import JobObserver, Observers
from gangd.core.results import JobResult
from gangd.core.types import BoardPort, BusSlots, JobRecords, PortPower
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine import recoveries, recovery, secure_boot, steps
from gangd.engine.context import StepContext
from gangd.engine.explain import explained
from gangd.trace.recorder import TraceRecorder

_job_ids = itertools.count(1)


class Job:
    def __init__(
        self,
        port: BoardPort,
        event: PortEvent,
        recipe: Recipe,
        stopping: Callable[[], bool],
        *,
        observers: Sequence[JobObserver] = (),
        records: JobRecords | None = None,
        power: PortPower | None = None,
        admission: BusSlots | None = None,
        job_id: int | None = None,  # given by a station that runs jobs in worker processes
    ) -> None:
        self.id = job_id if job_id is not None else next(_job_ids)
        self.port = port
        self.event = event
        self.recipe = recipe
        self.plan = p.plan(recipe)
        self.result = JobResult(self.id, port.path, port.label, event.serial, "success")
        self.events = Observers(list(observers))  # attached by whoever runs the job
        self.ctx = StepContext(
            port,
            event,
            recipe,
            self.plan,
            self.result,
            self.events,
            stopping,
            records,
            power,
            admission or Admission(None),
        )
        self.rebooting = False  # reset without a wait-reboot step: the station watches for its return
        self.log = self.ctx.log
        self.trace = TraceRecorder.attach(self)  # None unless the recipe has [trace]; it taps ctx's handles

    @property
    def attempt(self) -> int:
        return self.ctx.attempt

    # --- the job as a whole ---------------------------------------------------------------------

    async def run(self) -> JobResult:
        # Bound for every line of this job, including spsdk's, in this task and any worker thread.
        with structlog.contextvars.bound_contextvars(
            port=self.port.path, label=self.port.label, job=self.id, serial=self.event.serial
        ):
            return await self._run()

    async def _run(self) -> JobResult:
        result = self.result
        result.started, started = time.time(), time.monotonic()
        images = [{"address": i.address, "size": len(i.data), "sha256": i.sha256} for i in self.recipe.images]
        try:
            await self.events.job_started(result, list[dict[str, object]](images), self.recipe.family.name)
        except JournalUnwritable as exc:
            # No record, no job: the board is left exactly as it came (nothing was sent to it).
            result.result, result.not_started = "stopped", str(exc)
            result.reason = f"not started: {exc}"
            self.ctx.close()
            result.duration_s = time.monotonic() - started
            await self.events.job_finished(result)  # the port goes idle; there is no row to complete
            self.log.warning("board left untouched: its job's start could not be recorded", reason=str(exc))
            return result
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
                result.explanation = explained(error.status, self.recipe.family.name)
            finished = True
        finally:
            if not finished:  # cancelled (shutdown past its grace time) or a bug: never "success"
                result.result, result.step = "stopped", self.port.step
                result.reason = "gangd stopped the job in the middle of this step"
            self.ctx.close()
            # The admission ends with the job; a flashloader still on the bus keeps its slot
            # counted (the station follows the bus) until it leaves the flashloader stage.
            self.ctx.release_slot()
            result.duration_s = time.monotonic() - started
            await self.events.job_finished(result)  # shielded: the record is written while shutting down
        # The one summary line of the job.
        self.log.info(
            "job finished",
            result=result.result,
            step=result.step,
            reason=result.reason,
            explanation=result.explanation,
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
        policy, ctx = self.recipe.recovery, self.ctx
        event = self.event
        while True:
            try:
                await self._run_plan(event)
                return
            except (BoardRemoved, JobStopped, DataUnavailable):
                raise
            except JobError as error:
                klass = recovery.classify(error.status, error.kind)
                if klass == recovery.POWER and (ctx.cycled_for_protection or not ctx.may_power_cycle()):
                    klass = recovery.PERMANENT  # cycled once already, or not allowed: nothing else clears it
                if klass == recovery.PERMANENT or ctx.attempt >= policy.max_attempts:
                    ctx.note(error, klass, recovery.NONE)
                    if klass != recovery.PERMANENT:
                        error.reason += f" (gave up after {ctx.attempt} attempts)"
                    raise
                event = await recoveries.recover(ctx, error, klass)
                await trio.sleep(policy.backoff(ctx.attempt))
                ctx.attempt += 1
                self.events.state_changed("programming")

    # --- the plan -------------------------------------------------------------------------------

    async def _run_plan(self, event: PortEvent) -> None:
        """Run the plan's steps for a board that arrived with `event`; progress is the weight of
        the steps done over the weight of the steps this board needs (fwupd-style)."""
        ctx = self.ctx
        stage = p.Stage.FLASHLOADER if stage_of(self.recipe.family, event) == p.Stage.FLASHLOADER else p.Stage.ROM
        plan = p.steps_from(self.plan, stage)
        self.result.fuses = []  # what this run read and burned
        planned = sum(step.weight for step in plan)
        retries = dict.fromkeys({step.group for step in plan if step.group is not None}, 0)
        index = 0
        while index < len(plan):
            step = plan[index]
            ctx.progress_span = (sum(s.weight for s in plan[:index]) / planned, step.weight / planned)
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
                ctx.flash.rewrite(step.group)
                await steps.retry_flash(ctx, step, error, retries[step.group])
                index = p.group_start(plan, index)
                continue
            index += 1
            self.events.progress_changed(sum(s.weight for s in plan[:index]) / planned)

    def _identified(self, step: p.Step, board_id: str | None) -> None:
        if self.result.board_id and board_id != self.result.board_id:
            # Between two attempts someone swapped the board: the rest is not this job's board.
            raise BoardRemoved(self.port.path, step.name, f"a different board ({board_id}) is on the port now")
        self.result.board_id = board_id
        structlog.contextvars.bind_contextvars(board=board_id)

    async def _execute(self, step: p.Step, event: PortEvent) -> PortEvent:
        """One step; returns the board's current event (a wait brings a new one)."""
        ctx = self.ctx
        match step:
            case p.LoadFlashloader():
                await ctx.admit(event)
                await ctx.run(step.name, step.deadline_s, lambda: ops.load_flashloader(ctx.client(event), step))
            case p.WaitStage(required=True):
                self.events.state_changed("waiting-replug")
                self.events.step_started(step.name)
                started = time.monotonic()
                event = await ctx.wait_stage(step.target, step.deadline_s, step.name)
                ctx.timing(step.name, time.monotonic() - started)
                self.events.state_changed("programming")
            case p.WaitStage():
                # Seeing it come back proves it rebooted; a board that boots its application
                # without USB never does, which is not a failure.
                self.events.state_changed("waiting-replug")
                self.events.step_started(step.name)
                started = time.monotonic()
                with trio.move_on_after(step.deadline_s):
                    try:
                        await ctx.wait_stage(step.target, step.deadline_s, step.name)
                    except BoardRemoved:
                        pass  # programmed and reset; the operator was just quick to take it out
                ctx.timing(step.name, time.monotonic() - started)
            case p.Open():
                await ctx.admit(event)
                ctx.mboot = await ctx.run(step.name, step.deadline_s, lambda: ops.open_mboot(ctx.client(event)))
            case p.Identify(internal_flash=True):
                board_id, geometry = await ctx.run(
                    step.name,
                    step.deadline_s,
                    ops.identify_and_geometry,
                    ctx.board,
                    INTERNAL_FLASH,
                    self.recipe.geometry,
                )
                self._identified(step, board_id)
                steps.use_geometry(ctx, geometry)
            case p.Identify():
                board_id = await ctx.run(step.name, step.deadline_s, ops.identify, ctx.board)
                self._identified(step, board_id)
            case p.ConfigureMemory():
                geometry = await ctx.run(
                    step.name,
                    step.deadline_s,
                    ops.configure_and_geometry,
                    ctx.board,
                    step,
                    ctx.option_words,
                    self.recipe.geometry,
                )
                steps.use_geometry(ctx, geometry)
            case p.BlankCheck():
                await steps.blank_check(ctx, step)
            case p.Erase():
                await steps.erase(ctx, step)
            case p.Write():
                await steps.write(ctx, step)
                code = max_freq_code(ctx.option_words)
                self.result.flash_clock_mhz = clock_mhz(self.recipe.family.name, code) if code is not None else None
            case p.Verify():
                await ctx.run(
                    step.name, step.deadline_s, ops.verify, ctx.board, step.image, step.memory_id, ctx.progress()
                )
            case p.TakeBoardData():
                await steps.take_board_data(ctx, step)
            case p.WriteBoardData():
                await steps.write_board_data(ctx, step)
            case p.Fuses():
                await steps.burn_fuses(ctx, step.name, step.deadline_s, step.fuses)
            case p.SecureBootStage():
                event = await secure_boot.run(ctx, step, event)
            case p.Reset():
                if not ctx.stopping():  # gangd stopping resets at once
                    await ctx.admission.reset_turn(ctx.port.path)  # gangd/core/scheduling.py
                await ctx.run(step.name, step.deadline_s, ctx.board.reset, 0, False)
                ctx.close()
                # Without a wait-reboot step the station watches for the board's return.
                self.rebooting = not any(isinstance(s, p.WaitStage) and not s.required for s in self.plan)
            case _:
                raise AssertionError(f"no engine for step {step!r}")
        return event
