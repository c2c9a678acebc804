"""`gangd run --simulate` options for a first run: a seeded share of boards with a fault."""

from __future__ import annotations

import pytest

from gangd.service.simulated import board_faults, fault_shares, plan_simulation
from gangd.service.world import SimulationOptions


def test_fault_share_parses_the_fraction_after_the_last_equals_sign():
    assert fault_shares(["marginal-read:max-mhz=100=0.25"]) == [("marginal-read:max-mhz=100", 0.25)]
    for bad in ("marginal-read:max-mhz=100", "marginal-read=1.5", "=0.5", "nope=0.5"):
        with pytest.raises(ValueError, match="--fault-share"):
            fault_shares([bad])


def test_a_share_of_boards_gets_the_fault_repeatably():
    shares = fault_shares(["marginal-read:max-mhz=100=0.25", "write-protect:persist=always=0.1"])
    faults = board_faults(("slow-flash:factor=2",), shares, seed=3)
    boards = [faults(n) for n in range(1, 2001)]
    assert boards == [board_faults(("slow-flash:factor=2",), shares, seed=3)(n) for n in range(1, 2001)]
    assert all(b[0] == "slow-flash:factor=2" for b in boards)
    marginal = sum("marginal-read:max-mhz=100" in b for b in boards) / len(boards)
    protected = sum("write-protect:persist=always" in b for b in boards) / len(boards)
    assert 0.22 < marginal < 0.28 and 0.08 < protected < 0.12
    assert board_faults(("x",), [], seed=3) == ("x",)  # no shares: the plain tuple, as before


def test_the_simulation_plan_types_every_option():
    options = SimulationOptions(
        ports=4,
        root_ports=2,
        faults=("slow-flash:factor=2",),
        fault_shares=("marginal-read:max-mhz=100=0.25",),
        port_faults=("B2=hang", "1-1.1=status:cmd=reset,code=1", "B2=no-reenumerate"),
        layout="A1 A2 / B1 B2",
    )
    plan = plan_simulation(options, None)
    assert plan.labels == {"1-1.1": "A1", "1-1.2": "A2", "1-2.1": "B1", "1-2.2": "B2"}  # 2 root ports
    assert plan.layout == (("1-1.1", "1-1.2"), ("1-2.1", "1-2.2"))
    assert plan.port_faults == {"1-2.2": ["hang", "no-reenumerate"], "1-1.1": ["status:cmd=reset,code=1"]}
    assert plan.faults == ("slow-flash:factor=2",) and plan.shares == [("marginal-read:max-mhz=100", 0.25)]
