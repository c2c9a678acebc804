"""The USB bus as it really is: about 8 flashloader-stage boards fill one root port's periodic
bandwidth. gangd admits boards to the flashloader stage per root port, so 12 boards behind one
root port all succeed in waves; without admission the boards over the budget get no hidraw node
and their jobs end in the bandwidth diagnosis, never as board failures."""

from __future__ import annotations

import pytest

from gangd.sim import TimingModel

pytestmark = pytest.mark.trio

# A flashloader stage long against the ROM stage, so all 12 boards want theirs at once: on a bus
# that enumerates them at once (the kernel's queue, 131.5 ms a board, would spread them out; it
# has its own tests in tests/sim/test_enumeration.py).
LONG_FLASHLOADER = TimingModel(
    time_scale=1.0, report_interval_s=0, reenumeration_s=0.05, page_program_s=0.004
).parallel_bus()


async def test_twelve_boards_behind_one_root_port_all_succeed_in_waves_of_eight(line, store):
    run = await line(12, timing=LONG_FLASHLOADER, hub_options={"flashloader_budget": 8})
    results = await run.wait_results(12, timeout=60)
    assert {r.result for r in results} == {"success"}, [(r.port, r.reason) for r in results]
    assert {r["result"] for r in store.jobs()} == {"success"}
    # Never more than the budget in flashloader stage on that root port, and the budget was used.
    assert run.hub.peak_flashloaders["1-1"] == 8
    assert run.station.admission.peak["1-1"] == 8
    status = run.station.status()
    assert {p["root_port"] for p in status["ports"]} == {"1-1"}
    assert status["root_ports"]["1-1"]["budget"] == 8 and status["root_ports"]["1-1"]["in_use"] <= 8


async def test_without_admission_the_boards_over_the_budget_end_in_the_bandwidth_diagnosis(line, store):
    run = await line(
        12, timing=LONG_FLASHLOADER, hub_options={"flashloader_budget": 8}, station_options={"bandwidth_budget": None}
    )
    results = await run.wait_results(12, timeout=60)
    by_result: dict[str, list] = {}
    for result in results:
        by_result.setdefault(result.result, []).append(result)
    assert sorted(by_result) == ["stopped", "success"] and len(by_result["success"]) == 8
    for refused in by_result["stopped"]:
        assert refused.reason.startswith("USB bandwidth exhausted on root port 1-1"), refused.reason
        assert "no hidraw node" in refused.reason
    assert "failed" not in {r["result"] for r in store.jobs()}
    assert run.hub.peak_flashloaders["1-1"] == 8
