"""The stages of `[secure_boot]` on one board: SRK -> reload -> proof -> close -> confirm -> locks.

Every stage starts from what the board's fuses say, so a board that comes back after a power
loss, a SIGKILL or a cancelled job resumes where it stood: an SRK_HASH already equal is left alone
(no word is ever burned twice), the proof runs again, and only then the close. A stage's outcome
is appended to the job's `result.secure_boot` (the record's `secure_boot` column, the metric
`gangd_secure_boot_total{stage,result}`).

What the real ROM does that this relies on, and what is inference, is in ../shared/SECURE-BOOT.md
and README "Secure boot". In short: the SDP HAB word (0x12343412 closed) and ERROR_STATUS
0x33333333 after a refused jump are stated by NXP's tools' sources; that the ROM refuses an
unsigned flashloader over SDP on a closed RT10xx is inferred [I]; the proof's HAB report needs a
flashloader built to give it [?].
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import trio
from spsdk.sdp.commands import ResponseValue

from gangd.config.recipe import FuseWord
from gangd.config.secure_boot import FLASHLOADER_HAB_REPORT, SecureBoot
from gangd.core.errors import CommandFailed, JobError
from gangd.core.events import PortEvent
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine.fuses import BURN, OK, FuseDecision

if TYPE_CHECKING:
    from gangd.engine.context import StepContext

# HAB's report_status codes (NXP SBL hab_type.h): status, configuration, state.
HAB_STATUS = {0xF0: "SUCCESS", 0x69: "WARNING", 0x33: "FAILURE"}
HAB_CONFIG = {0xF0: "OPEN", 0xCC: "CLOSED"}
HAB_STATE = {0x99: "TRUSTED", 0x66: "NONSECURE"}
SDP_HAB_CLOSED = ResponseValue.LOCKED.tag  # 0x12343412 in every SDP response of a closed part
SDP_HAB_OPEN = ResponseValue.UNLOCKED.tag  # 0x56787856
HAB_REFUSED = 0x3333_3333  # ERROR_STATUS after the ROM refused a jump


async def run(ctx: StepContext, step: p.SecureBootStage, event: PortEvent) -> PortEvent:
    sb = ctx.recipe.secure_boot
    assert sb is not None
    name = f"secure-boot-{step.what}"
    match step.what:
        case "srk":
            await srk(ctx, name, step.deadline_s, sb)
        case "reload":
            event = await reload(ctx, name, step.deadline_s)
        case "proof":
            await proof(ctx, name, step.deadline_s, sb)
        case "close":
            await close(ctx, name, step.deadline_s, sb)
        case "confirm":
            event = await confirm(ctx, name, step.deadline_s, sb)
        case "locks":
            await locks(ctx, name, step.deadline_s, sb)
        case _:
            raise AssertionError(f"no secure-boot stage {step.what!r}")
    return event


def _outcome(ctx: StepContext, stage: str, result: str, **evidence: Any) -> None:
    ctx.result.secure_boot.append({"stage": stage, "result": result, **evidence})
    ctx.log.info("secure boot", stage=stage, outcome=result, **evidence)


async def _burn(ctx: StepContext, name: str, deadline_s: float, decisions: list[FuseDecision]) -> dict[int, int]:
    """Burn and read back, shielded from cancellation: once the first bit is set the rest follow."""
    with trio.CancelScope(shield=True):
        after = await ctx.run(name, deadline_s, ops.burn, ctx.board, decisions, check_stopping=False)
    wrong = [d for d in decisions if after[d.word.index] != d.word.value]
    if wrong:
        names = ", ".join(f"{d.word.name}=0x{after[d.word.index]:08x} (wanted 0x{d.word.value:08x})" for d in wrong)
        raise JobError(ctx.port.path, name, f"read-back after burning differs: {names}", kind="fuse-readback")
    return after


# --- the stages ---------------------------------------------------------------------------------


async def srk(ctx: StepContext, name: str, deadline_s: float, sb: SecureBoot) -> None:
    """Blank -> burn; equal -> nothing; another key's hash (any word neither blank nor equal) ->
    a permanent failure with nothing burned. Words blank beside equal ones (a burn cut short by a
    power loss) are completed: each word is burned at most once."""
    readings = await ctx.run(name, deadline_s, ops.read_fuses, ctx.board, [w.index for w in sb.srk])
    decisions = [FuseDecision(w, readings[w.index], OK if readings[w.index] == w.value else BURN) for w in sb.srk]
    held = "".join(f"{readings[w.index]:08x}" for w in sb.srk)
    if any(d.action == BURN and d.current != 0 for d in decisions):
        _outcome(ctx, "srk", "different", held=held, wanted=sb.image.srk_hex)
        raise JobError(
            ctx.port.path,
            name,
            f"SRK_HASH holds another key's hash (fuses 0x18..0x1f: {held}; the signed image's SRK "
            f"table: {''.join(f'{w.value:08x}' for w in sb.srk)}); nothing was burned",
            kind="fuse-conflict",
        )
    burns = [d for d in decisions if d.action == BURN]
    if not burns:
        _outcome(ctx, "srk", "equal", srk_hash=sb.image.srk_hex)
        return
    await _burn(ctx, name, deadline_s, burns)
    _outcome(ctx, "srk", "burned", srk_hash=sb.image.srk_hex, words=len(burns))


async def _reset_to_rom(ctx: StepContext, name: str) -> PortEvent:
    d = ctx.recipe.deadlines
    await ctx.run(name, d.command_s, ctx.board.reset, 0, False)
    ctx.close()
    return await ctx.wait_stage(p.Stage.ROM, d.reset_replug_s + d.replug_s, name)


def _load_step(ctx: StepContext, data: bytes | None = None) -> p.LoadFlashloader:
    step = next(s for s in ctx.plan if isinstance(s, p.LoadFlashloader))
    return step if data is None else dataclasses.replace(step, data=data)


async def _into_flashloader(ctx: StepContext, name: str, event: PortEvent) -> PortEvent:
    """From the ROM: the signed flashloader, its enumeration, an open handle, configured memory."""
    d = ctx.recipe.deadlines
    await ctx.admit(event)
    loader = _load_step(ctx)
    await ctx.run(name, d.load_flashloader_s, lambda: ops.load_flashloader(ctx.client(event), loader))
    event = await ctx.wait_stage(p.Stage.FLASHLOADER, d.replug_s, name)
    await ctx.admit(event)
    ctx.mboot = await ctx.run(name, d.command_s, lambda: ops.open_mboot(ctx.client(event)))
    configure = ctx.configure_step
    if configure is not None:  # the proof reads the image in flash through the FlexSPI
        await ctx.run(name, d.command_s, ops.configure, ctx.board, configure, ctx.option_words)
    return event


async def reload(ctx: StepContext, name: str, deadline_s: float) -> PortEvent:
    """The flashloader running now was authenticated before the SRK was burned (or by a ROM
    that, open, may not check the SRK hash at all [?]): reset and have the ROM load it again."""
    # Each command and wait inside has its own deadline; `deadline_s` is their sum (plan.py).
    event = await _reset_to_rom(ctx, name)
    return await _into_flashloader(ctx, name, event)


def _report(words: list[int] | None) -> dict[str, Any]:
    """report_status's words as names: [status, config, state, number of HAB events]."""
    first = (words or [])[:4]
    values: list[int | None] = [None] * 4
    values[: len(first)] = first

    def named(table: dict[int, str], value: int | None) -> str | None:
        return None if value is None else table.get(value, f"0x{value:02x}")

    return {
        "status": named(HAB_STATUS, values[0]),
        "config": named(HAB_CONFIG, values[1]),
        "state": named(HAB_STATE, values[2]),
        "events": values[3],
    }


def _passes(report: dict[str, Any]) -> bool:
    # SBL's acceptance is status != FAILURE, CLOSED, TRUSTED; on an open part only "no failure"
    # can be asked: SUCCESS and no HAB event at all (a warning is an event).
    return report["status"] == "SUCCESS" and report["events"] == 0


async def proof(ctx: StepContext, name: str, deadline_s: float, sb: SecureBoot) -> None:
    """The named proof, on the open part. Only `flashloader-hab-report` exists so far."""
    assert sb.proof == FLASHLOADER_HAB_REPORT
    evidence: dict[str, Any] = {}
    for what, index in (("flashloader", 0), ("image", sb.image.ivt_address)):
        try:
            words = await ctx.run(name, deadline_s / 2, ctx.board.get_property, sb.proof_property, index)
        except CommandFailed as exc:
            _outcome(ctx, "proof", "failed", proof=sb.proof, **evidence, **{what: f"no report: {exc.reason}"})
            raise JobError(
                ctx.port.path,
                name,
                f"proof {sb.proof!r} failed: the flashloader gave no HAB report for the {what} "
                f"(get-property 0x{sb.proof_property:x}, index 0x{index:x}: {exc.reason}); the part "
                "stays open, nothing but the SRK was burned",
                exc.status,
                kind="secure-boot-proof",
            ) from None
        evidence[what] = _report(words)
    failed = [what for what, report in evidence.items() if not _passes(report)]
    _outcome(ctx, "proof", "failed" if failed else "passed", proof=sb.proof, **evidence)
    if failed:
        detail = "; ".join(
            f"the signed {what}: HAB {evidence[what]['status']}, {evidence[what]['events']} event(s)" for what in failed
        )
        raise JobError(
            ctx.port.path,
            name,
            f"proof {sb.proof!r} failed: {detail}; the part stays open, nothing but the SRK was burned",
            kind="secure-boot-proof",
        )


def _proven(ctx: StepContext) -> bool:
    return any(e["stage"] == "proof" and e["result"] == "passed" for e in ctx.result.secure_boot)


async def close(ctx: StepContext, name: str, deadline_s: float, sb: SecureBoot) -> None:
    """SEC_CONFIG[1], only after the proof passed on this board in this ctx."""
    word = sb.close_word
    current = (await ctx.run(name, deadline_s, ops.read_fuses, ctx.board, [word.index]))[word.index]
    if current & word.value:
        _outcome(ctx, "close", "already-closed", before=current)
        return
    if not _proven(ctx):  # the plan puts the proof first; this holds even if it did not
        _outcome(ctx, "close", "refused", before=current)
        raise JobError(ctx.port.path, name, "not closing: the proof has not passed on this board", kind="fuse-conflict")
    wanted = FuseWord(word.name, word.index, current | word.value)
    after = await _burn(ctx, name, deadline_s, [FuseDecision(wanted, current, BURN)])
    _outcome(ctx, "close", "burned", before=current, after=after[word.index])


async def confirm(ctx: StepContext, name: str, deadline_s: float, sb: SecureBoot) -> PortEvent:
    """Reset; the ROM must report closed and refuse the unsigned flashloader; the signed one loads."""
    d = ctx.recipe.deadlines
    event = await _reset_to_rom(ctx, name)
    unsigned = _load_step(ctx, sb.unsigned_flashloader)
    hab, refused = await ctx.run(name, d.load_flashloader_s, lambda: rom_check(ctx.client(event), unsigned))
    evidence = {"sdp_hab": f"0x{hab:08x}", "unsigned_status": f"0x{refused:08x}" if refused else None}
    if hab != SDP_HAB_CLOSED or refused != HAB_REFUSED:
        _outcome(ctx, "confirm", "failed", **evidence)
        what = (
            f"the ROM reports HAB 0x{hab:08x}, not closed (0x{SDP_HAB_CLOSED:08x})"
            if hab != SDP_HAB_CLOSED
            else "the ROM did not refuse the unsigned flashloader"
        )
        raise JobError(ctx.port.path, name, f"closed, but the confirm failed: {what}", kind="rom-refused")
    event = await _into_flashloader(ctx, name, event)
    _outcome(ctx, "confirm", "passed", **evidence, signed_flashloader="loaded")
    return event


def rom_check(sdp, unsigned: p.LoadFlashloader) -> tuple[int, int | None]:
    """In the ROM (blocking): the HAB word its responses carry, and ERROR_STATUS after asking it
    to run an unsigned flashloader (0x33333333: refused; None: it left the bus, i.e. ran it)."""
    sdp.open()
    sdp.read_status()
    hab = sdp.hab_status
    if hab != SDP_HAB_CLOSED:
        return hab, None  # never ask an open part to run an unsigned image: it would
    sdp.write_file(unsigned.address, unsigned.data)
    sdp.jump_and_run(unsigned.jump_address)
    try:
        status = sdp.read_status()
    except Exception:  # noqa: BLE001 - the board left the bus: it ran the unsigned image
        return hab, None
    return hab, status


async def locks(ctx: StepContext, name: str, deadline_s: float, sb: SecureBoot) -> None:
    """The lock bits, last: burn only the bits not yet set; other bits of the word are kept."""
    readings = await ctx.run(name, deadline_s, ops.read_fuses, ctx.board, [w.index for w in sb.locks])
    burns = [
        FuseDecision(FuseWord(w.name, w.index, readings[w.index] | w.value), readings[w.index], BURN)
        for w in sb.locks
        if readings[w.index] & w.value != w.value
    ]
    if burns:
        await _burn(ctx, name, deadline_s, burns)
    _outcome(ctx, "locks", "burned" if burns else "equal", words=[w.name for w in sb.locks])
