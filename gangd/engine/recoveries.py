"""The recovery strategies that bring a board back to its ROM, registered by action beside the
one policy table (`recovery.py`: which class a failure is, and which actions, in which order, that
class gets). fwupd's `fu_device_retry_add_recovery`: the engine tries each registered strategy of
the class in turn; a strategy returns the board's event once it is back in its ROM, or None when it
cannot help here (the next one is tried), or raises to end the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gangd.core.errors import BoardRemoved, DataUnavailable, JobError, JobStopped, ReplugTimeout, StepTimeout
from gangd.core.events import PortEvent
from gangd.engine import plan as p
from gangd.engine import recovery
from gangd.engine.context import StepContext

Strategy = Callable[[StepContext, JobError, str], Awaitable[PortEvent | None]]
STRATEGIES: dict[str, Strategy] = {}


def strategy(action: str) -> Callable[[Strategy], Strategy]:
    def register(fn: Strategy) -> Strategy:
        STRATEGIES[action] = fn
        return fn

    return register


async def recover(ctx: StepContext, error: JobError, klass: str) -> PortEvent:
    """Bring the board back to its ROM with the class's strategies, in the policy's order."""
    ctx.events.state_changed("recovering")
    ctx.release_slot()  # the board goes back to its ROM (or is given up)
    for action in recovery.BOARD_RECOVERY[klass]:
        fn = STRATEGIES.get(action)
        if fn is not None and (event := await fn(ctx, error, klass)) is not None:
            return event
    raise error  # no strategy could help: the job ends with the failure as it was


@strategy(recovery.RESET)
async def reset_over_usb(ctx: StepContext, error: JobError, klass: str) -> PortEvent | None:
    """The flashloader's reset, when the board still answers (not after a timeout or lost contact,
    nor for what only power clears)."""
    if (
        ctx.mboot is None
        or error.kind in ("lost-contact", "bandwidth")
        or isinstance(error, StepTimeout | ReplugTimeout)
    ):
        return None
    deadlines = ctx.recipe.deadlines
    try:
        await ctx.run("recover-reset", deadlines.command_s, ctx.board.reset, 0, False)
        ctx.close()
        ctx.note(error, klass, recovery.RESET)
        return await ctx.wait_stage(p.Stage.ROM, deadlines.replug_s, "recover-reset")
    except (BoardRemoved, JobStopped, DataUnavailable):
        raise
    except JobError:
        return None  # the board does not take a reset: the next strategy (its port's power)


@strategy(recovery.POWER_CYCLE)
async def power_cycle_port(ctx: StepContext, error: JobError, klass: str) -> PortEvent | None:
    """The hub port's power off and on (sysfs `disable`, when allowed): the board boots its ROM
    afresh; volatile write protection is gone with the power."""
    ctx.close()
    if ctx.power is None or not ctx.may_power_cycle():
        return None
    ctx.cycled_for_protection |= klass == recovery.POWER
    ctx.note(error, klass, recovery.POWER_CYCLE)
    ctx.log.warning("power-cycling the port", step=error.step)
    ctx.events.state_changed("disabled")
    await ctx.power.power_cycle(ctx.port.path)
    ctx.events.state_changed("recovering")
    return await ctx.wait_stage(p.Stage.ROM, ctx.recipe.deadlines.replug_s, "power-cycle")


@strategy(recovery.REPLUG)
async def ask_operator_to_replug(ctx: StepContext, error: JobError, klass: str) -> PortEvent | None:
    """Nothing gangd can switch: the job ends, telling the operator what to do."""
    ctx.note(error, klass, recovery.REPLUG)
    if error.kind == "bandwidth":
        error.reason += "; its port's power cannot be switched from here: replug it once the root port has room"
    else:
        error.reason += "; the board stopped answering and cannot be reset from here: replug it"
    raise error
