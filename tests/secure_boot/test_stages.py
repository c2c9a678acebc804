"""Closing simulated boards only after proof: SRK -> reload -> proof -> close -> confirm -> locks."""

from __future__ import annotations

import pytest
import trio

from gangd.service.metrics import Metrics
from gangd.service.view import StationView
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.hab import SRK_HASH_INDEX
from gangd.sim.source import SimHubSource
from gangd.station.station import Station

from ..conftest import TEST_DEADLINES  # noqa: F401
from ..support import until

pytestmark = pytest.mark.trio

SRK = range(SRK_HASH_INDEX, SRK_HASH_INDEX + 8)
BOOT_CFG1 = 6


def at_step(station: Station, path: str, step: str) -> bool:
    port = station.ports.get(path)
    return port is not None and port.step == step


def programmed(board) -> list[int]:
    """The OTP indexes the board was asked to program, in order."""
    return [record.args[0] for record in board.commands("efuse-program-once")]


def stages(record) -> list[tuple[str, str]]:
    return [(entry["stage"], entry["result"]) for entry in record["secure_boot"]]


async def test_a_good_board_ends_closed_and_still_loads_the_signed_flashloader(line, secure_recipe, store, hab_keys):
    metrics = Metrics()
    run = await line(1, recipe_override=secure_recipe(), station_options={"metrics": metrics})
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    board = run.hub.board("1-1.1")
    assert board.hab_closed
    assert [board.otp.read(i) for i in SRK] == [hab_keys.table.get_fuse(n) for n in range(8)]
    assert programmed(board) == [*SRK, BOOT_CFG1]  # each word once, the close after the SRK
    record = store.jobs()[0]
    assert stages(record) == [
        ("srk", "burned"),
        ("proof", "passed"),
        ("close", "burned"),
        ("confirm", "passed"),
    ]
    proof = record["secure_boot"][1]
    assert proof["flashloader"]["status"] == "SUCCESS" and proof["image"]["events"] == 0
    confirm = record["secure_boot"][3]
    assert confirm["sdp_hab"] == "0x12343412" and confirm["unsigned_status"] == "0x33333333"
    # The ROM's own log after the close: the unsigned flashloader refused, the signed one run.
    close_at = board.commands("efuse-program-once")[-1].at
    jumps = [r.status for r in board.commands("jump-address") if r.at > close_at]
    assert jumps == [0x3333_3333, 0]
    # The views: the tile's closed mark, the counter per stage and result.
    tile = StationView(run.station).tile(run.station.ports["1-1.1"])
    assert tile["closed"] and "closed (HAB)" in tile["note"]
    sample = metrics.registry.get_sample_value
    for stage, outcome in (("srk", "burned"), ("proof", "passed"), ("close", "burned"), ("confirm", "passed")):
        assert sample("gangd_secure_boot_total", {"stage": stage, "result": outcome}) == 1
    assert sample("gangd_secure_boot_total", {"stage": "proof", "result": "failed"}) == 0


async def test_a_bad_signature_fails_the_proof_and_the_part_stays_open(line, secure_recipe, store):
    run = await line(1, faults={"1-1.1": ("hab:bad-signature",)}, recipe_override=secure_recipe())
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step) == ("failed", "secure-boot-proof")
    assert "proof 'flashloader-hab-report' failed" in result.reason
    assert "the part stays open" in result.reason
    board = run.hub.board("1-1.1")
    assert not board.hab_closed and board.otp.read(BOOT_CFG1) == 0
    assert programmed(board) == list(SRK)  # nothing but the SRK
    assert stages(store.jobs()[0]) == [("srk", "burned"), ("proof", "failed")]
    assert [a.action for a in result.attempts] == ["none"]  # permanent: never retried into a close


async def test_a_part_holding_another_keys_hash_fails_with_nothing_burned(line, secure_recipe, store):
    run = await line(1, faults={"1-1.1": ("hab:wrong-srk",)}, recipe_override=secure_recipe())
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step) == ("failed", "secure-boot-srk")
    assert "SRK_HASH holds another key's hash" in result.reason and "nothing was burned" in result.reason
    board = run.hub.board("1-1.1")
    assert programmed(board) == [] and not board.hab_closed
    assert stages(store.jobs()[0]) == [("srk", "different")]


async def test_close_never_burns_the_srk_and_proves_but_leaves_the_part_open(line, secure_recipe, store):
    run = await line(1, recipe_override=secure_recipe('close = "never"\nproof = "flashloader-hab-report"'))
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    board = run.hub.board("1-1.1")
    assert programmed(board) == list(SRK) and not board.hab_closed
    assert stages(store.jobs()[0]) == [("srk", "burned"), ("proof", "passed")]


async def test_locks_are_burned_last_after_the_confirm(line, secure_recipe, store):
    recipe = secure_recipe(
        'close = "after-proof"\nproof = "flashloader-hab-report"\n[secure_boot.locks]\nLOCKS = 0x4000'
    )
    run = await line(1, recipe_override=recipe)
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    board = run.hub.board("1-1.1")
    assert programmed(board) == [*SRK, BOOT_CFG1, 0]
    assert board.otp.read(0) & 0x4000
    assert [s for s, _ in stages(store.jobs()[0])] == ["srk", "proof", "close", "confirm", "locks"]


async def test_a_job_killed_between_the_srk_burn_and_the_close_resumes_from_the_fuses(
    rt1020, secure_recipe, store, hab_keys
):
    """The station is cancelled (as by SIGKILL: no grace) once the SRK is burned, before the
    proof; a new station finds the SRK equal, proves, closes. No word is burned twice."""
    recipe = secure_recipe()
    with SimHub(1) as hub:
        board = hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=4)())
        first = Station(rt1020, recipe, records=store)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(first.run, SimHubSource(hub).run)
                await until(first.changes, lambda: at_step(first, "1-1.1", "secure-boot-reload"), "the SRK burned")
                nursery.cancel_scope.cancel()
        assert programmed(board) == list(SRK) and not board.hab_closed
        second = Station(rt1020, recipe, records=store)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(second.run, SimHubSource(hub).run)
                await until(second.changes, lambda: second.results, "the second station's result")
                nursery.cancel_scope.cancel()
        assert second.results[0].result == "success", second.results[0].reason
        assert board.hab_closed
        assert programmed(board) == [*SRK, BOOT_CFG1]  # each word burned once, across both jobs
    records = store.jobs()
    assert [r["result"] for r in records] == ["stopped", "success"]
    by_result = {r["result"]: r for r in records}
    assert stages(by_result["stopped"]) == [("srk", "burned")]
    assert stages(by_result["success"]) == [
        ("srk", "equal"),
        ("proof", "passed"),
        ("close", "burned"),
        ("confirm", "passed"),
    ]
