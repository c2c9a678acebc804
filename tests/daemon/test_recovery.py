"""Automatic recovery, port-or-board diagnosis and the records that show what happened."""

from __future__ import annotations

import dataclasses

import pytest

from gangd.sim import BoardFactory, TimingModel

from .conftest import IMAGE

pytestmark = pytest.mark.trio


async def test_a_20106_with_no_mechanism_found_is_retried(line, store, recipe):
    """RT1020 whose first two erases fail with 20106 with nothing behind it (a dice roll): the
    diagnosis finds the range erased and readable at 133 MHz, so the erase is simply run again.
    The real causes of 20106 are tested in test_flash_recovery.py."""
    # Without the blank check: a blank board's first pass would erase nothing.
    naive = dataclasses.replace(recipe, blank_check=False)
    run = await line(1, faults={"1-1.1": ("status:cmd=flash-erase-region,code=20106,nth=1+2",)}, recipe_override=naive)
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    board = run.hub.board("1-1.1")
    assert board.flash_image(0x6000_0000, len(IMAGE)) == IMAGE
    record = store.jobs()[0]
    assert record["result"] == "success" and record["board_id"] == f"{board.uuid:016x}"
    failures = [(a["step"], a["status"], a["class"], a["action"]) for a in record["attempts"]]
    assert failures == [
        ("erase", 20106, "transient", "reconfigure-memory"),
        ("erase", 20106, "transient", "reconfigure-memory"),
    ]
    assert "FlexSPINOR: Command Failure" in record["attempts"][0]["error"]
    assert [d["finding"] for d in record["diagnoses"]] == ["no-fault-found"] * 2
    assert record["flash_clock_mhz"] == 133 and not record["marginal"]
    # Each diagnosis: configure at the safe clock and read back, configure at 133 MHz and read back.
    diagnosis = ["configure-memory", "read-memory", "configure-memory", "read-memory"]
    sequence = [
        r.command for r in board.commands() if r.command in ("configure-memory", "flash-erase-region", "read-memory")
    ]
    assert sequence[:10] == ["configure-memory", "flash-erase-region", *diagnosis, "flash-erase-region", *diagnosis[:3]]


async def test_flash_that_never_erases_fails_within_the_budget(line, store, recipe):
    naive = dataclasses.replace(recipe, blank_check=False)  # every pass erases, the first one too
    run = await line(1, faults={"1-1.1": ("status:cmd=flash-erase-region,code=20106",)}, recipe_override=naive)
    result = (await run.wait_results(1))[0]
    policy = recipe.recovery
    assert (result.result, result.step, result.status) == ("failed", "erase", 20106)
    assert "20106 (0x4e8a) FlexSPINOR: Command Failure." in result.reason
    assert f"gave up after {policy.max_attempts} attempts" in result.reason
    erases = run.hub.board("1-1.1").commands("flash-erase-region")
    assert len(erases) == policy.max_attempts * (policy.transient_retries + 1)
    actions = [a["action"] for a in store.jobs()[0]["attempts"]]
    assert actions.count("reset-board") == policy.max_attempts - 1 and actions[-1] == "none"


async def test_permanent_failure_is_not_retried(line):
    run = await line(1, faults={"1-1.1": ("status:cmd=write-memory,code=10200",)})
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step, result.status) == ("failed", "write", 10200)
    assert len(run.hub.board("1-1.1").commands("write-memory")) == 1


async def test_hung_board_is_power_cycled_when_allowed(line, recipe):
    allowed = dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))
    run = await line(1, faults={"1-1.1": ("hang:cmd=write-memory,nth=1",)}, recipe_override=allowed)
    result = (await run.wait_results(1))[0]
    assert result.result == "success"
    assert [a.action for a in result.attempts] == ["power-cycle-port"]
    assert run.hub.board("1-1.1").power_cycles == 1


async def test_hung_board_without_power_switching_asks_for_a_replug(line):
    run = await line(1, faults={"1-1.1": ("hang:cmd=write-memory,nth=1",)})
    result = (await run.wait_results(1))[0]
    assert (result.result, result.step) == ("failed", "write")
    assert "replug it" in result.reason
    assert [a.action for a in result.attempts] == ["ask-operator-to-replug"]


async def test_a_port_that_fails_boards_which_pass_elsewhere_is_suspect(line, rt1020):
    run = await line(2, port_faults={"1-1.1": ["status:cmd=write-memory,code=10200"]}, plug=False)
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=21)
    specs = [factory() for _ in range(3)]
    count = 0
    for spec in specs:
        # The operator tries the board on port 1; it fails; the same board then passes on port 2.
        run.hub.plug("1-1.1", spec)
        count += 1
        await run.wait_results(count)
        run.hub.unplug("1-1.1")
        run.hub.plug("1-1.2", spec)
        count += 1
        await run.wait_results(count)
        run.hub.unplug("1-1.2")
    results = run.station.results
    assert [(r.port, r.result) for r in results] == [("1-1.1", "failed"), ("1-1.2", "success")] * 3
    assert run.station.ports["1-1.1"].suspect and not run.station.ports["1-1.2"].suspect


async def test_boards_that_fail_everywhere_do_not_make_a_port_suspect(line):
    bad = ("status:cmd=write-memory,code=10200",)
    run = await line(2, faults={"1-1.1": bad, "1-1.2": bad})
    await run.wait_results(2)
    assert not any(port.suspect for port in run.station.ports.values())


async def test_boards_failing_everywhere_never_flag_the_ports_they_pass_through(line, rt1020):
    """Three boards that fail on any port go through both ports, then three good boards pass on
    port 2: port 1's last three failures are of boards that never passed anywhere, so it is not
    suspect; and a port whose failed boards pass elsewhere is (the rule's both halves)."""
    run = await line(2, plug=False, port_faults={"1-1.2": ["status:cmd=write-memory,code=10200"]})
    factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=41)
    count = 0

    async def through(port: str, spec) -> None:
        nonlocal count
        run.hub.plug(port, spec)
        count += 1
        await run.wait_results(count)
        run.hub.unplug(port)

    bad = []
    for _ in range(3):
        spec = factory()
        spec.faults = ("status:cmd=write-memory,code=10200",)  # fails wherever it goes
        bad.append(spec)
        await through("1-1.1", spec)
        await through("1-1.2", spec)
    assert not run.station.ports["1-1.1"].suspect  # its failures are the boards' own
    assert not run.station.ports["1-1.2"].suspect
    for _ in range(3):  # good boards: fail on the flaky port 1-1.2, pass on 1-1.1
        spec = factory()
        await through("1-1.2", spec)
        await through("1-1.1", spec)
    assert run.station.ports["1-1.2"].suspect and not run.station.ports["1-1.1"].suspect
