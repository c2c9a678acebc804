"""The bodies of the plan's flash and data steps: the minimal write (blank check, erase, write),
per-board values and OTP fuses, run by the job engine.

Split from `job.py` (the engine: order, deadlines, retries, recovery), with the diagnosis of a
flash group's read-back failure; each function runs one step
of `job` through the job's own step runner, so deadlines, error translation and timing apply.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import structlog
import trio
from spsdk.mboot.error_codes import StatusCode

from gangd.config.family import stage_of
from gangd.config.flexspi import with_max_freq
from gangd.config.recipe import FusePlan, Image
from gangd.core.bus import root_port
from gangd.core.errors import (
    BandwidthExhausted,
    CommandFailed,
    DataExhausted,
    DataUnavailable,
    JobError,
    LineUnavailable,
)
from gangd.core.events import PortEvent
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine import recovery
from gangd.engine.diagnosis import PROTECTED, READ_PATH
from gangd.engine.fuses import BURN, conflict_reason, decide

if TYPE_CHECKING:
    from gangd.engine.job import Job

CUMULATIVE_WRITE = StatusCode.MEMORY_CUMULATIVE_WRITE.tag  # 10203: a page to program is not erased


async def blank_check(job: Job, step: p.BlankCheck) -> None:
    """Which of the image's sectors are already blank (board_ops.blank_check: a sample, then the
    whole range only where the sample shows an old image). Skipped when the group runs again after
    a failure: a retried group erases and writes everything, trusting no earlier read."""
    assert step.group is not None
    job.blank.pop(step.group, None)
    job.presumed_blank.discard(step.group)
    if step.group in job.full_groups:
        return
    write = _group_step(job, p.Write, step.group)
    blank, presumed = await job._step(
        step.name,
        step.deadline_s,
        ops.blank_check,
        job.mboot,
        step.address,
        step.length,
        _write_runs(job, write),
        step.memory_id,
    )
    job.blank[step.group] = blank
    if presumed:
        job.presumed_blank.add(step.group)
    job.log.debug("blank check", step=step.name, blank_sectors=sum(blank), sectors=len(blank), presumed=presumed)


async def erase(job: Job, step: p.Erase) -> None:
    """The image's sectors; with a blank check, only those it found not blank."""
    blank = job.blank.get(step.group) if step.skip_blank and step.group is not None else None
    runs = p.sector_runs(blank) if blank is not None else [(0, step.length)]
    if runs:
        await job._step(step.name, step.deadline_s, ops.erase_runs, job.mboot, step.address, runs, step.memory_id)
    else:
        job._record_timing(step.name, 0.0)  # every sector already blank: nothing to erase


async def write(job: Job, step: p.Write) -> None:
    """The image; with skip_blank_pages, only its runs of pages holding something but 0xFF (a
    retried group writes it whole). Over a range the blank check only presumed blank, the
    flashloader's refusal of an unerased page (10203) is the check: the range is then read,
    what is not blank erased, and the image written again, within this step."""
    image = step.image
    runs = _write_runs(job, step)
    if runs:
        run = functools.partial(
            job._step, step.name, step.deadline_s, ops.write_runs, job.mboot, image, runs, step.memory_id
        )
        try:
            await run(progress_of(job))
        except CommandFailed as error:
            if error.status != CUMULATIVE_WRITE or step.group not in job.presumed_blank:
                raise
            await _erase_what_is_not_blank(job, step, error)
            await run(progress_of(job))
    else:
        job._record_timing(step.name, 0.0)  # an image of 0xFF only: nothing to program
    job._tell("bytes_written", sum(length for _, length in runs))


async def _erase_what_is_not_blank(job: Job, step: p.Write, error: CommandFailed) -> None:
    """The range was presumed blank and is not: read it, erase its sectors that are not blank."""
    assert step.group is not None
    job.presumed_blank.discard(step.group)
    job.log.info(
        "write refused an unerased page; reading the range and erasing it", step=step.name, status=error.status
    )
    check = _group_step(job, p.BlankCheck, step.group)
    blank = await job._step(
        check.name, check.deadline_s, ops.blank_sectors, job.mboot, check.address, check.length, check.memory_id
    )
    job.blank[step.group] = blank
    erase_step = _group_step(job, p.Erase, step.group)
    await erase(job, erase_step)


def _write_runs(job: Job, step: p.Write) -> list[tuple[int, int]]:
    """The runs the write programs: the image's non-0xFF pages, or all of it (a retried group)."""
    full = not step.skip_blank_pages or step.group in job.full_groups
    return [(0, len(step.image.data))] if full else p.page_runs(step.image)


def _group_step(job: Job, kind, group: int):
    return next(s for s in job.plan if isinstance(s, kind) and s.group == group)


def progress_of(job: Job):
    """A data phase's progress (bytes done of total, from the port's worker thread, at most ~20
    times a second: stream.Throttle) as the job's fraction, told to its observers in trio's thread
    without waiting for it."""
    token = trio.lowlevel.current_trio_token()
    base, span = job.progress_span

    def told(done: int, total: int) -> None:
        token.run_sync_soon(job._tell, "progress_changed", base + span * done / max(total, 1))

    return told


async def admit(job: Job, event: PortEvent) -> None:
    """Room on the board's root port before it enters (or while it is in) its flashloader
    stage; a flashloader without a hidraw node was refused bandwidth by the bus."""
    if event.devnode is None and stage_of(job.recipe.family, event) == p.Stage.FLASHLOADER:
        raise BandwidthExhausted(
            job.port.path,
            job.port.step or p.StepName.OPEN,
            f"USB bandwidth exhausted on root port {root_port(job.port.path)}: the flashloader "
            f"enumerated ({event.ids}) but its HID interface was refused (no hidraw node)",
            kind="bandwidth",
        )
    if not job.admitted:
        await job.admission.enter(job.port.path, lambda: job._tell("state_changed", "queued"))
        job.admitted = True
        job._tell("state_changed", "programming")


async def retry_flash(job: Job, step: p.Step, error: JobError, retry: int) -> None:
    """Before a flash group runs again: diagnose a read-back failure, else re-configure."""
    job._tell("state_changed", "recovering")
    await trio.sleep(job.recipe.recovery.backoff(retry))
    configure = job._configure_step
    if configure is None:  # internal flash: nothing to configure, the group just runs again
        job._note(error, recovery.TRANSIENT, recovery.RETRY)
    elif recovery.is_flash_readback(error.status, error.kind) and isinstance(step, (p.Erase, p.Write, p.Verify)):
        await diagnose(job, step, error)
    else:
        job._note(error, recovery.TRANSIENT, recovery.RECONFIGURE)
        await job._step(
            p.StepName.CONFIGURE_MEMORY,
            job.recipe.deadlines.command_s,
            ops.configure,
            job.mboot,
            configure,
            job.option_words,
        )
    job._tell("state_changed", "programming")


async def diagnose(job: Job, step: p.Step, error: JobError) -> None:
    """Tell a marginal read path from write protection (diagnosis.py) and act on the finding."""
    image = next(s.image for s in job.plan if isinstance(s, p.Write) and s.group == step.group)
    length = image.erase_length if error.step == p.StepName.ERASE else len(image.data)
    # Each call is one configure or one read of the range: one data deadline covers either.
    run = functools.partial(job._step, "diagnose", job.recipe.deadlines.data_s(length))
    configure_step = job._configure_step
    assert configure_step is not None  # diagnosed only where the memory is configured (FlexSPI)
    configure = functools.partial(ops.configure, job.mboot, configure_step)
    diagnosis = await job.diagnostician.diagnose(
        run, configure, job.mboot.read_memory, job.option_words, image.address, length, error.step, error.status
    )
    job.result.diagnoses.append(diagnosis)
    job.log.warning(
        "flash diagnosed",
        step=error.step,
        status=error.status,
        finding=diagnosis.finding,
        failed_mhz=diagnosis.failed_mhz,
        mhz=diagnosis.mhz,
        detail=diagnosis.detail,
    )
    if diagnosis.finding == PROTECTED:
        raise JobError(
            job.port.path,
            error.step,
            f"flash write-protected (block-protect bits set): {diagnosis.detail}; {error.reason}",
            error.status,
            kind="write-protected",
        )
    if diagnosis.finding != READ_PATH:
        job._note(error, recovery.TRANSIENT, recovery.RECONFIGURE)
        return
    if job.recipe.quality_marginal == "reject":
        raise JobError(
            job.port.path,
            error.step,
            f"marginal board rejected ([quality] marginal = reject): {diagnosis.detail}",
            error.status,
            kind="marginal-board",
        )
    assert diagnosis.code is not None  # a clock ladder exists only for option words
    job.option_words = with_max_freq(job.option_words, diagnosis.code)
    job.result.marginal = True
    job._tell("clock_fallback")
    job._note(error, recovery.TRANSIENT, recovery.LOWER_CLOCK)


async def take_board_data(job: Job, step: p.TakeBoardData) -> None:
    """This board's values, taken durably with its record (records.allocate)."""
    if job.records is None or job.result.record_id is None or not job.result.board_id:
        raise JobError(
            job.port.path,
            step.name,
            "per-board data needs the records database and the board's unique id",
            kind="board-data",
        )
    try:
        values = await trio.to_thread.run_sync(
            job.records.allocate, job.result.record_id, job.result.board_id, list(step.entries)
        )
    except DataExhausted as exc:
        job.result.halt = str(exc)
        raise DataUnavailable(job.port.path, step.name, str(exc)) from None
    except LineUnavailable as exc:
        job.result.line_down = str(exc)
        raise DataUnavailable(job.port.path, step.name, str(exc)) from None
    job.result.board_data = values
    structlog.contextvars.bind_contextvars(board_data=values)


async def write_board_data(job: Job, step: p.WriteBoardData) -> None:
    """The values taken for this board, written and read back (or burned)."""
    for entry in step.entries:
        value = job.result.board_data[entry.name]
        if entry.fuse is not None:
            word = dataclasses.replace(entry.fuse, value=entry.as_int(value))
            await burn_fuses(job, step.name, step.deadline_s, FusePlan(job.recipe.fuses.policy, (word,)))
            continue
        assert entry.address is not None
        data = entry.encode(value)
        if len(data) > entry.size:
            raise JobError(
                job.port.path,
                step.name,
                f"{entry.name} {value!r} needs {len(data)} bytes, the configuration reserves {entry.size}",
                kind="board-data",
            )
        start = entry.address // p.SECTOR_SIZE * p.SECTOR_SIZE
        end = -(-(entry.address + entry.size) // p.SECTOR_SIZE) * p.SECTOR_SIZE
        await job._step(step.name, step.deadline_s, job.mboot.flash_erase_region, start, end - start, step.memory_id)
        await job._step(step.name, step.deadline_s, job.mboot.write_memory, entry.address, data, step.memory_id)
        await job._step(step.name, step.deadline_s, ops.verify, job.mboot, Image(entry.address, data), step.memory_id)


async def burn_fuses(job: Job, name: str, deadline_s: float, fuses: FusePlan) -> None:
    """Read every word, judge them all, then burn (shielded from cancellation) and read back."""
    mboot = job.mboot
    readings = await job._step(name, deadline_s, ops.read_fuses, mboot, [w.index for w in fuses.words])
    decisions = decide(fuses, readings)
    job.result.fuses += [
        {"name": d.word.name, "index": d.word.index, "before": d.current, "wanted": d.word.value, "action": d.action}
        for d in decisions
    ]
    reason = conflict_reason(decisions)
    if reason:
        raise JobError(job.port.path, name, reason, kind="fuse-conflict")
    burns = [d for d in decisions if d.action == BURN]
    if not burns:
        return
    # Once the first bit is burned the rest must follow and be read back: no deadline-free
    # cancellation, no shutdown, may interrupt it (the step's own deadline still applies).
    with trio.CancelScope(shield=True):
        after = await job._step("fuses-burn", deadline_s, ops.burn, mboot, burns, check_stopping=False)
    for entry in job.result.fuses:
        entry["after"] = after.get(entry["index"], entry["before"])
    wrong = [d for d in burns if after[d.word.index] != d.word.value]
    if wrong:
        names = ", ".join(f"{d.word.name}=0x{after[d.word.index]:08x}" for d in wrong)
        raise JobError(job.port.path, "fuses-burn", f"read-back after burning differs: {names}", kind="fuse-readback")
