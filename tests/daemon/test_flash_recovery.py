"""gangd recovers from 20106 by its mechanism: a marginal read path, or write protection.

The boards are simulated with the mechanism itself (`marginal-read:max-mhz=`, `write-protect:`),
not with a dice-rolled status: the simulated flashloader fails the way NXP's does (docs/FLASHLOADER.md).
"""

from __future__ import annotations

import dataclasses

import pytest

from .conftest import IMAGE

pytestmark = pytest.mark.trio

BASE = 0x6000_0000


def _allow_power_cycle(recipe):
    return dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))


async def test_marginal_board_is_programmed_at_the_clock_that_reads_back(line, store):
    """The user's case: option 0xC0000007 (133 MHz) on a board whose reads are reliable to 100 MHz."""
    run = await line(1, faults={"1-1.1": ("marginal-read:max-mhz=100",)})
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    assert result.flash_clock_mhz == 100 and result.marginal
    board = run.hub.board("1-1.1")
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE
    record = store.jobs()[0]
    assert (record["reason"], record["explanation"]) == (result.reason, result.explanation)
    assert (record["result"], record["flash_clock_mhz"], record["marginal"]) == ("success", 100, 1)
    [diagnosis] = record["diagnoses"]
    assert (diagnosis["step"], diagnosis["status"], diagnosis["finding"]) == ("erase", 20106, "marginal-read-path")
    assert (diagnosis["failed_mhz"], diagnosis["mhz"]) == (133, 100)
    assert [(a["step"], a["action"]) for a in record["attempts"]] == [("erase", "lower-flash-clock")]


async def test_marginal_board_rejected_when_the_recipe_says_so(line, recipe, store):
    strict = dataclasses.replace(recipe, quality_marginal="reject")
    run = await line(1, faults={"1-1.1": ("marginal-read:max-mhz=100",)}, recipe_override=strict)
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step) == ("failed", "erase")
    assert "marginal board rejected" in result.reason and "100 MHz" in result.reason
    assert len(run.hub.board("1-1.1").commands("write-memory")) == 0


async def test_volatile_write_protection_is_cleared_by_one_power_cycle(line, recipe, store):
    run = await line(1, faults={"1-1.1": ("write-protect:persist=power",)}, recipe_override=_allow_power_cycle(recipe))
    result = (await run.wait_results(1))[0]
    board = run.hub.board("1-1.1")
    assert result.result == "success"
    assert board.power_cycles == 1
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE
    record = store.jobs()[0]
    assert [(a["step"], a["class"], a["action"]) for a in record["attempts"]] == [
        ("erase", "power", "power-cycle-port")
    ]
    assert record["diagnoses"][0]["finding"] == "write-protected"
    # No reset was tried: a reset keeps the flash's volatile protection.
    assert [r.command for r in board.commands("reset")] == ["reset"]  # only the final one


async def test_volatile_write_protection_without_power_switching_fails_permanently(line, store):
    run = await line(1, faults={"1-1.1": ("write-protect:persist=power",)})
    result = (await run.wait_results(1))[0]
    board = run.hub.board("1-1.1")
    assert (result.result, result.step, result.status) == ("failed", "erase", 20106)
    assert result.reason.startswith("flash write-protected (block-protect bits set): ")
    assert board.power_cycles == 0 and not board.commands("reset")  # resets alone cannot clear it
    assert len(board.commands("flash-erase-region")) == 1
    assert "write-protected" in store.jobs()[0]["reason"]


async def test_permanent_write_protection_fails_within_three_erases(line, recipe, store):
    run = await line(1, faults={"1-1.1": ("write-protect:persist=always",)}, recipe_override=_allow_power_cycle(recipe))
    result = (await run.wait_results(1))[0]
    board = run.hub.board("1-1.1")
    assert (result.result, result.step) == ("failed", "erase")
    assert result.reason.startswith("flash write-protected (block-protect bits set): ")
    assert "20106" in result.reason and " | " not in result.reason  # the status it started from ...
    assert result.explanation is not None and result.explanation.startswith("20106")  # ... explained apart
    assert len(board.commands("flash-erase-region")) <= 3
    assert board.power_cycles == 1  # tried once; never repeated blindly
    record = store.jobs()[0]
    assert record["result"] == "failed" and [a["action"] for a in record["attempts"]] == ["power-cycle-port", "none"]


async def test_a_write_that_fails_mid_image_is_erased_again_before_it_is_rewritten(line, store):
    run = await line(1, faults={"1-1.1": ("status:cmd=write-memory,code=20106,after=16384,nth=1",)})
    result = (await run.wait_results(1))[0]
    board = run.hub.board("1-1.1")
    assert result.result == "success"
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE
    flash_commands = [r.command for r in board.commands() if r.command in ("flash-erase-region", "write-memory")]
    # The blank board's first pass erases nothing (its blank check found every sector blank); the
    # retried group trusts no earlier read and erases the whole image before writing it again.
    assert flash_commands == ["write-memory", "flash-erase-region", "write-memory"]
    # Without the second erase the real flashloader would refuse the re-write (10203).
    assert all(r.status == 0 for r in board.commands("write-memory")[1:])
