"""The bodies of the plan's flash and data steps: the minimal write (blank check, erase, write),
per-board values and OTP fuses, run by the job engine.

Split from `ctx.py` (the engine: order, deadlines, retries, recovery), with the diagnosis of a
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

from gangd.config.flexspi import with_max_freq
from gangd.config.geometry import Geometry
from gangd.config.recipe import FusePlan, Image
from gangd.core.errors import (
    CommandFailed,
    DataExhausted,
    DataUnavailable,
    JobError,
    JournalUnwritable,
    LineUnavailable,
)
from gangd.core.results import NO_FAULT, PROTECTED, READ_PATH, Diagnosis
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine import recovery
from gangd.engine.fuses import BURN, conflict_reason, decide

if TYPE_CHECKING:
    from gangd.engine.context import StepContext

CUMULATIVE_WRITE = StatusCode.MEMORY_CUMULATIVE_WRITE.tag  # 10203: a page to program is not erased


async def blank_check(ctx: StepContext, step: p.BlankCheck) -> None:
    """Which of the image's sectors are already blank (board_ops.blank_check: a sample, then the
    whole range only where the sample shows an old image). Skipped when the group runs again after
    a failure: a retried group erases and writes everything, trusting no earlier read."""
    assert step.group is not None
    ctx.flash.forget(step.group)
    if ctx.flash.whole(step.group):
        return
    write = _group_step(ctx, p.Write, step.group)
    blank, presumed = await ctx.run(
        step.name,
        step.deadline_s,
        ops.blank_check,
        ctx.board,
        step.address,
        step.length,
        _write_runs(ctx, write)[1],
        step.memory_id,
    )
    ctx.flash.checked(step.group, blank, presumed)
    ctx.log.debug("blank check", step=step.name, blank_sectors=sum(blank), sectors=len(blank), presumed=presumed)


def use_geometry(ctx: StepContext, geometry: Geometry) -> None:
    """From now on the job erases and writes by the geometry the board answered (board_ops.geometry;
    the planned one where it did not answer); logged (debug: a line per board on a terminal would
    drown the results) where its units differ from the plan's."""
    planned = ctx.recipe.geometry
    ctx.geometry = geometry
    if geometry != planned and ctx.debugging:
        ctx.log.debug(
            "flash geometry",
            sector=geometry.sector_size,
            page=geometry.page_size,
            source=geometry.source,
            planned_sector=planned.sector_size,
            planned_page=planned.page_size,
        )


async def erase(ctx: StepContext, step: p.Erase) -> None:
    """The image's sectors; with a blank check, only those it found not blank. Without one, the
    whole sectors of the board's own geometry: an internal flash refuses (101) an erase that is not
    on its sectors, where the FlexSPI NOR driver widens it."""
    blank = ctx.flash.blank(step.group) if step.skip_blank else None
    address = step.address
    if blank is not None:
        runs = p.sector_runs(blank)
    else:
        address, length = ctx.geometry.span(step.address, step.length)
        runs = [(0, length)]
    if runs:
        await ctx.run(step.name, step.deadline_s, ops.erase_runs, ctx.board, address, runs, step.memory_id)
    else:
        ctx.timing(step.name, 0.0)  # every sector already blank: nothing to erase


async def write(ctx: StepContext, step: p.Write) -> None:
    """The image; with skip_blank_pages, only its runs of pages holding something but 0xFF (a
    retried group writes it whole). Over a range the blank check only presumed blank, the
    flashloader's refusal of an unerased page (10203) is the check: the range is then read,
    what is not blank erased, and the image written again, within this step."""
    image, runs = _write_runs(ctx, step)
    if runs:
        run = functools.partial(
            ctx.run, step.name, step.deadline_s, ops.write_runs, ctx.board, image, runs, step.memory_id
        )
        try:
            await run(ctx.progress())
        except CommandFailed as error:
            if error.status != CUMULATIVE_WRITE or not ctx.flash.presumed(step.group):
                raise
            await _erase_what_is_not_blank(ctx, step, error)
            await run(ctx.progress())
    else:
        ctx.timing(step.name, 0.0)  # an image of 0xFF only: nothing to program
    ctx.events.bytes_written(sum(length for _, length in runs))


async def _erase_what_is_not_blank(ctx: StepContext, step: p.Write, error: CommandFailed) -> None:
    """The range was presumed blank and is not: read it, erase its sectors that are not blank."""
    assert step.group is not None
    ctx.log.info(
        "write refused an unerased page; reading the range and erasing it", step=step.name, status=error.status
    )
    check = _group_step(ctx, p.BlankCheck, step.group)
    blank = await ctx.run(
        check.name, check.deadline_s, ops.blank_sectors, ctx.board, check.address, check.length, check.memory_id
    )
    ctx.flash.checked(step.group, blank)
    erase_step = _group_step(ctx, p.Erase, step.group)
    await erase(ctx, erase_step)


def _write_runs(ctx: StepContext, step: p.Write) -> tuple[Image, list[tuple[int, int]]]:
    """The image as the board's geometry takes it and the runs the write programs: its non-0xFF
    pages, or all of it (a retried group, an image not on a sector) from the page it starts in."""
    image = step.image.on(ctx.geometry)
    if not step.skip_blank_pages or ctx.flash.whole(step.group):
        image = image.page_aligned()
        return image, [(0, len(image.data))]
    return image, list(image.page_runs)


def _group_step(ctx: StepContext, kind, group: int):
    return next(s for s in ctx.plan if isinstance(s, kind) and s.group == group)


async def retry_flash(ctx: StepContext, step: p.Step, error: JobError, retry: int) -> None:
    """Before a flash group runs again: diagnose a read-back failure, else re-configure."""
    ctx.events.state_changed("recovering")
    await trio.sleep(ctx.recipe.recovery.backoff(retry))
    configure = ctx.configure_step
    if configure is None:  # internal flash: nothing to configure, the group just runs again
        if recovery.is_flash_readback(error.status, error.kind):
            # No FlexSPI, no read clock to lower: the diagnosis says so and the recovery is the
            # group's erase and write again (its retries bound it).
            ctx.result.diagnoses.append(
                Diagnosis(
                    error.step,
                    error.status,
                    NO_FAULT,
                    0,
                    0,
                    f"internal flash of {ctx.recipe.family.name}: no FlexSPI read clock to lower; "
                    "erased and programmed again",
                )
            )
        ctx.note(error, recovery.TRANSIENT, recovery.RETRY)
    elif recovery.is_flash_readback(error.status, error.kind) and isinstance(step, (p.Erase, p.Write, p.Verify)):
        await diagnose(ctx, step, error)
    else:
        ctx.note(error, recovery.TRANSIENT, recovery.RECONFIGURE)
        await ctx.run(
            p.StepName.CONFIGURE_MEMORY,
            ctx.recipe.deadlines.command_s,
            ops.configure,
            ctx.board,
            configure,
            ctx.option_words,
        )
    ctx.events.state_changed("programming")


async def diagnose(ctx: StepContext, step: p.Step, error: JobError) -> None:
    """Tell a marginal read path from write protection (diagnosis.py) and act on the finding."""
    image = next(s.image for s in ctx.plan if isinstance(s, p.Write) and s.group == step.group)
    erased = error.step == p.StepName.ERASE
    address, length = (image.erase_start, image.erase_length) if erased else (image.address, len(image.data))
    # Each call is one configure or one read of the range: one data deadline covers either.
    run = functools.partial(ctx.run, "diagnose", ctx.recipe.deadlines.data_s(length))
    configure_step = ctx.configure_step
    assert configure_step is not None  # diagnosed only where the memory is configured (FlexSPI)
    configure = functools.partial(ops.configure, ctx.board, configure_step)
    diagnosis = await ctx.diagnostician.diagnose(
        run,
        configure,
        lambda at, length: ctx.board.read_memory(at, length) or b"",
        ctx.option_words,
        address,
        length,
        error.step,
        error.status,
    )
    ctx.result.diagnoses.append(diagnosis)
    ctx.log.warning(
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
            ctx.port.path,
            error.step,
            f"flash write-protected (block-protect bits set): {diagnosis.detail}; {error.reason}",
            error.status,
            kind="write-protected",
        )
    if diagnosis.finding != READ_PATH:
        ctx.note(error, recovery.TRANSIENT, recovery.RECONFIGURE)
        return
    if ctx.recipe.quality_marginal == "reject":
        raise JobError(
            ctx.port.path,
            error.step,
            f"marginal board rejected ([quality] marginal = reject): {diagnosis.detail}",
            error.status,
            kind="marginal-board",
        )
    assert diagnosis.code is not None  # a clock ladder exists only for option words
    ctx.option_words = with_max_freq(ctx.option_words, diagnosis.code)
    ctx.result.marginal = True
    ctx.events.clock_fallback()
    ctx.note(error, recovery.TRANSIENT, recovery.LOWER_CLOCK)


async def take_board_data(ctx: StepContext, step: p.TakeBoardData) -> None:
    """This board's values, taken durably with its record (records.allocate)."""
    if ctx.records is None or ctx.result.record_id is None or not ctx.result.board_id:
        raise JobError(
            ctx.port.path,
            step.name,
            "per-board data needs the records database and the board's unique id",
            kind="board-data",
        )
    try:
        values = await trio.to_thread.run_sync(
            ctx.records.allocate, ctx.result.record_id, ctx.result.board_id, list(step.entries)
        )
    except DataExhausted as exc:
        ctx.result.halt = str(exc)
        raise DataUnavailable(ctx.port.path, step.name, str(exc)) from None
    except LineUnavailable as exc:
        ctx.result.line_down = str(exc)
        raise DataUnavailable(ctx.port.path, step.name, str(exc)) from None
    except JournalUnwritable as exc:  # a value is handed out only with its record: none is written
        # The board was identified and nothing of this attempt written to it: it waits on its port
        # and gets a new job, and its own value, once the journal takes writes (station.py).
        ctx.result.journal_down = str(exc)
        raise DataUnavailable(
            ctx.port.path, step.name, f"per-board data not recorded: {exc}; the board waits for the journal"
        ) from None
    ctx.result.board_data = values
    structlog.contextvars.bind_contextvars(board_data=values)


async def write_board_data(ctx: StepContext, step: p.WriteBoardData) -> None:
    """The values taken for this board, written and read back (or burned)."""
    for entry in step.entries:
        value = ctx.result.board_data[entry.name]
        if entry.fuse is not None:
            word = dataclasses.replace(entry.fuse, value=entry.as_int(value))
            await burn_fuses(ctx, step.name, step.deadline_s, FusePlan(ctx.recipe.fuses.policy, (word,)))
            continue
        assert entry.address is not None
        data = entry.encode(value)
        if len(data) > entry.size:
            raise JobError(
                ctx.port.path,
                step.name,
                f"{entry.name} {value!r} needs {len(data)} bytes, the configuration reserves {entry.size}",
                kind="board-data",
            )
        start, length = ctx.geometry.span(entry.address, entry.size)
        await ctx.run(step.name, step.deadline_s, ctx.board.flash_erase_region, start, length, step.memory_id)
        stored = Image(entry.address, data, geometry=ctx.geometry)
        written = stored.page_aligned()  # from its page: a write must start on one
        await ctx.run(step.name, step.deadline_s, ctx.board.write_memory, written.address, written.data, step.memory_id)
        await ctx.run(step.name, step.deadline_s, ops.verify, ctx.board, stored, step.memory_id)


async def burn_fuses(ctx: StepContext, name: str, deadline_s: float, fuses: FusePlan) -> None:
    """Read every word, judge them all, then burn (shielded from cancellation) and read back."""
    mboot = ctx.board
    readings = await ctx.run(name, deadline_s, ops.read_fuses, mboot, [w.index for w in fuses.words])
    decisions = decide(fuses, readings)
    ctx.result.fuses += [
        {"name": d.word.name, "index": d.word.index, "before": d.current, "wanted": d.word.value, "action": d.action}
        for d in decisions
    ]
    reason = conflict_reason(decisions)
    if reason:
        raise JobError(ctx.port.path, name, reason, kind="fuse-conflict")
    burns = [d for d in decisions if d.action == BURN]
    if not burns:
        return
    # Once the first bit is burned the rest must follow and be read back: no deadline-free
    # cancellation, no shutdown, may interrupt it (the step's own deadline still applies).
    with trio.CancelScope(shield=True):
        after = await ctx.run("fuses-burn", deadline_s, ops.burn, mboot, burns, check_stopping=False)
    for entry in ctx.result.fuses:
        entry["after"] = after.get(entry["index"], entry["before"])
    wrong = [d for d in burns if after[d.word.index] != d.word.value]
    if wrong:
        names = ", ".join(f"{d.word.name}=0x{after[d.word.index]:08x}" for d in wrong)
        raise JobError(ctx.port.path, "fuses-burn", f"read-back after burning differs: {names}", kind="fuse-readback")
