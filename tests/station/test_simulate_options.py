"""`gangd run --simulate` options for a first run: a seeded share of boards with a fault."""

from __future__ import annotations

import pytest

from gangd.daemon import _board_faults, fault_shares


def test_fault_share_parses_the_fraction_after_the_last_equals_sign():
    assert fault_shares(["marginal-read:max-mhz=100=0.25"]) == [("marginal-read:max-mhz=100", 0.25)]
    for bad in ("marginal-read:max-mhz=100", "marginal-read=1.5", "=0.5", "nope=0.5"):
        with pytest.raises(ValueError, match="--fault-share"):
            fault_shares([bad])


def test_a_share_of_boards_gets_the_fault_repeatably():
    shares = fault_shares(["marginal-read:max-mhz=100=0.25", "write-protect:persist=always=0.1"])
    faults = _board_faults(("slow-flash:factor=2",), shares, seed=3)
    boards = [faults(n) for n in range(1, 2001)]
    assert boards == [_board_faults(("slow-flash:factor=2",), shares, seed=3)(n) for n in range(1, 2001)]
    assert all(b[0] == "slow-flash:factor=2" for b in boards)
    marginal = sum("marginal-read:max-mhz=100" in b for b in boards) / len(boards)
    protected = sum("write-protect:persist=always" in b for b in boards) / len(boards)
    assert 0.22 < marginal < 0.28 and 0.08 < protected < 0.12
    assert _board_faults(("x",), [], seed=3) == ("x",)  # no shares: the plain tuple, as before
