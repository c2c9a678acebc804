"""The bodies of the plan's data steps: per-board values and OTP fuses, run by the job engine.

Split from `job.py` (the engine: order, deadlines, retries, recovery); each function runs one step
of `job` through the job's own step runner, so deadlines, error translation and timing apply.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import structlog
import trio

from gangd.config.recipe import FusePlan, Image
from gangd.core.errors import DataExhausted, DataUnavailable, JobError, LineUnavailable
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine.fuses import BURN, conflict_reason, decide

if TYPE_CHECKING:
    from gangd.engine.job import Job


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
