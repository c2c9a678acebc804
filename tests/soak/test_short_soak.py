"""Short soaks in the test suite: faults of every kind, SIGKILLs of gangd, and each variant's
invariants. The full soak is `python -m tools.soak` (README)."""

from __future__ import annotations

import re
import subprocess
import sys

COMMON = ("false successes", "lost records")


def soak(*args: str) -> str:
    """Run `python -m tools.soak` with these options; its report, once it passed."""
    command = [sys.executable, "-m", "tools.soak", "--time-scale", "0.02", "--timeout", "240", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "soak: PASS" in result.stdout
    return result.stdout


def assert_zero(out: str, *names: str) -> None:
    for name in names:
        assert re.search(rf"^{name}\s+0$", out, re.M), (name, out)


def test_short_soak_holds_every_invariant():
    out = soak("--boards", "40", "--ports", "4", "--kills", "2", "--seed", "3")
    assert_zero(
        out,
        *COMMON,
        "metrics vs records mismatches",
        "ports left stuck",
        "interrupted jobs not marked",
        "interrupted boards not programmed again",
    )
    assert "2 SIGKILLs" in out
    faults = re.search(r"faults injected: (\{.*\})", out).group(1)
    for kind in ("status", "malformed", "corrupt-readback", "port:status"):
        assert f"'{kind}'" in faults


def test_mechanism_soak_marginal_boards_succeed_protected_ones_fail_right():
    """The issue's variant: 20 % of boards with a marginal read path, 5 % protected for good (and
    5 % protected until power-off), among every other fault and a SIGKILL."""
    out = soak(
        "--boards", "60", "--ports", "4", "--kills", "1", "--seed", "5", "--marginal", "0.2", "--protected", "0.05"
    )
    assert_zero(
        out,
        *COMMON,
        "marginal boards not programmed right",
        "protected boards not failed right",
        "volatile-protected boards not programmed",
    )
    marginal = int(re.search(r"mechanisms:\s+(\d+) marginal boards", out).group(1))
    protected = int(re.search(r"(\d+) boards protected for good", out).group(1))
    assert marginal >= 5 and protected >= 1, out  # the variant really had boards of both mechanisms
    assert "'lower-flash-clock'" in re.search(r"recoveries: +(\{.*\})", out).group(1)


def test_serials_200_boards_8_ports_2_sigkills_never_issued_twice():
    """Per-board serial numbers from a counter, through SIGKILLs: every successful board's flash holds
    the serial its record names, no value is issued twice, and the records account for every value."""
    out = soak("--boards", "200", "--ports", "8", "--kills", "2", "--seed", "4", "--serials")
    assert_zero(
        out,
        *COMMON,
        "successful boards whose flash lacks their serial",
        "serials issued twice",
        "serials not accounted for by the records",
    )
    assert "2 SIGKILLs" in out and "200 boards" in out
    issued = int(re.search(r"serials:\s+(\d+) issued", out).group(1))
    assert issued >= 150, out  # most boards got one: the invariants were not met vacuously
