"""One engine runs every variant of the plan; progress reaches 100 % in each, and the commands the
board receives are the plan's commands."""

from __future__ import annotations

import dataclasses

import pytest

from gangd.config.recipe import FusePlan, FuseWord
from gangd.engine.plan import Stage, plan, steps_from, tool_lines
from gangd.sim import BoardFactory, TimingModel

from .conftest import IMAGE

pytestmark = pytest.mark.trio


def variants(recipe, rt1020):
    srk = rt1020.fuse_group("SRK_HASH")
    fuses = FusePlan("if-blank", tuple(FuseWord(w.name, w.index, 0x1000 + n) for n, w in enumerate(srk)))
    return {
        "default": recipe,
        "verify off": dataclasses.replace(recipe, verify=False),
        "final action leave": dataclasses.replace(recipe, final_action="leave"),
        "fuses on": dataclasses.replace(recipe, fuses=fuses),
    }


@pytest.mark.parametrize("variant", ["default", "verify off", "final action leave", "fuses on"])
@pytest.mark.parametrize("stage", ["rom", "flashloader"])
async def test_progress_reaches_100_percent_and_the_board_sees_the_plan(line, recipe, rt1020, variant, stage):
    chosen = variants(recipe, rt1020)[variant]
    run = await line(1, recipe_override=chosen, plug=False)
    run.hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=5, stage=stage)())
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    port = run.station.ports["1-1.1"]
    assert port.progress == 1.0
    steps = steps_from(plan(chosen), Stage(stage))
    # The burn is a shielded part of the fuses step, timed on its own.
    assert [s.name for s in result.steps if s.name != "fuses-burn"] == [s.name for s in steps]
    # Every command the plan prints reached the board, in order. (The fuse words are read, judged,
    # then burned and read back word by word: counted apart.)
    board = run.hub.board("1-1.1")
    ignored = ("get-property", "efuse-read-once", "efuse-program-once")
    sent = [r.command for r in board.commands() if r.command not in ignored]
    planned = [line.args[0] for line in tool_lines(steps) if line.tool and line.args[0] not in ignored]
    assert sent == planned
    burns = 8 if variant == "fuses on" else 0
    assert len(board.commands("efuse-program-once")) == burns and len(board.commands("efuse-read-once")) == 2 * burns
    assert board.flash_image(0x6000_0000, len(IMAGE)) == IMAGE
