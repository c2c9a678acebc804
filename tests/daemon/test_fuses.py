"""OTP fuses: burned only as the recipe's policy allows, judged before any write, read back,
and never interrupted once started."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from gangd.config.recipe import FusePlan, FuseWord
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.station.station import Station

from ..support.burn import MidBurn

pytestmark = pytest.mark.trio

SRK = [0x1111_0001 * (n + 1) & 0xFFFFFFFF for n in range(8)]  # most significant word first


def srk_plan(rt1020, policy: str) -> FusePlan:
    words = rt1020.fuse_group("SRK_HASH")
    return FusePlan(policy, tuple(FuseWord(w.name, w.index, v) for w, v in zip(words, SRK)))


def with_fuses(recipe, plan):
    return dataclasses.replace(recipe, fuses=plan)


async def test_blank_board_burns_and_verifies(line, recipe, rt1020, store):
    run = await line(1, recipe_override=with_fuses(recipe, srk_plan(rt1020, "if-blank")))
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    board = run.hub.board("1-1.1")
    assert [board.otp.read(24 + n) for n in range(8)] == SRK
    assert len(board.commands("efuse-program-once")) == 8
    fuses = store.jobs()[0]["fuses"]
    assert {f["action"] for f in fuses} == {"burn"} and [f["after"] for f in fuses] == SRK


async def test_identical_preburned_value_passes_without_burning(line, recipe, rt1020):
    preburned = tuple(f"otp:index={24 + n},value={v}" for n, v in enumerate(SRK))
    run = await line(1, faults={"1-1.1": preburned}, recipe_override=with_fuses(recipe, srk_plan(rt1020, "if-blank")))
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    assert run.hub.board("1-1.1").commands("efuse-program-once") == []


async def test_conflicting_value_fails_permanently_with_no_write(line, recipe, rt1020):
    other = ("otp:fuse=SRK_HASH[31:0],value=0x00000002",)  # a bit the recipe's last word lacks
    run = await line(1, faults={"1-1.1": other}, recipe_override=with_fuses(recipe, srk_plan(rt1020, "enforce")))
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step) == ("failed", "fuses")
    assert "already provisioned with a different SRK hash" in result.reason
    board = run.hub.board("1-1.1")
    assert board.commands("efuse-program-once") == []
    assert len(board.commands("efuse-read-once")) == 8  # read once, judged, not retried
    assert [a.action for a in result.attempts] == ["none"]


async def test_enforce_completes_a_partly_burned_word_if_blank_refuses_it(rt1020):
    from gangd.engine.fuses import BURN, CONFLICT, OK, decide

    readings = {24 + n: 0 for n in range(8)} | {24: 0x1, 25: SRK[1]}  # word 0 partly burned, word 1 done
    enforce = decide(srk_plan(rt1020, "enforce"), readings)
    assert [d.action for d in enforce[:3]] == [BURN, OK, BURN] and enforce[0].bits_to_burn == SRK[0] & ~1
    assert decide(srk_plan(rt1020, "if-blank"), readings)[0].action == CONFLICT


async def test_policy_never_sends_no_program_command(line, recipe, rt1020):
    run = await line(1, recipe_override=with_fuses(recipe, srk_plan(rt1020, "never")))
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    board = run.hub.board("1-1.1")
    assert board.commands("efuse-program-once") == [] and board.commands("efuse-read-once") == []
    assert [board.otp.read(24 + n) for n in range(8)] == [0] * 8


async def test_a_burn_in_progress_survives_cancellation(rt1020, recipe, store):
    """Cancel the whole station while fuses burn: every word is still burned, read back, recorded."""
    slow_fuses = TimingModel(time_scale=1, report_interval_s=0, reenumeration_s=0, fuse_program_s=0.1)
    with SimHub(1) as hub:
        board = hub.plug("1-1.1", BoardFactory(rt1020, slow_fuses, seed=4)())
        station = Station(rt1020, with_fuses(recipe, srk_plan(rt1020, "if-blank")), records=store)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                # The cancel comes as the second word starts to burn, its burn held until it arrived.
                mid_burn = MidBurn(board, 1, nursery.cancel_scope.cancel)
                await nursery.start(station.run, mid_burn.source(hub))
        mid_burn.assert_mid_burn()
        assert [board.otp.read(24 + n) for n in range(8)] == SRK
        burned = [r.args[0] for r in board.commands("efuse-program-once")]
        assert sorted(burned) == [24 + n for n in range(8)]  # each word once, none repeated
    record = store.jobs()[0]
    assert record["result"] == "stopped" and [f["after"] for f in record["fuses"]] == SRK
