"""Short soaks in the test suite: faults of every kind, SIGKILLs of gangd, and each variant's
invariants. The full soak is `python -m tools.soak` (README)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest

COMMON = ("false successes", "lost records")


def soak(*args: str) -> str:
    """Run `python -m tools.soak` with these options; its report, once it passed."""
    command = [sys.executable, "-m", "tools.soak", "--time-scale", "0.02", "--timeout", "240", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, " ".join(args) + "\n" + result.stdout + result.stderr[-3000:]
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


def test_the_whole_line_at_once_holds_every_invariant():
    """Every mechanism at once (marginal and protected flash, every other fault, per-board serials,
    retests on other ports), 16 ports behind one root port, SIGKILLs: the line's invariants, under a
    seed that changes per run (GANGD_SOAK_SEED repeats one) and is named when it fails."""
    seed = int(os.environ.get("GANGD_SOAK_SEED") or random.SystemRandom().randrange(1, 1_000_000))
    out = soak("--everything", "--boards", "400", "--ports", "16", "--kills", "4", "--seed", str(seed))
    assert f"seed {seed}" in out
    assert_zero(
        out,
        *COMMON,
        "metrics vs records mismatches",
        "ports left stuck",
        "boards stopped for USB bandwidth",
        "interrupted jobs not marked",
        "interrupted boards not programmed again",
        "marginal boards not programmed right",
        "protected boards not failed right",
        "volatile-protected boards not programmed",
        "successful boards whose flash lacks their serial",
        "serials issued twice",
        "serials not accounted for by the records",
    )
    assert "4 SIGKILLs" in out and "400 boards" in out
    marginal = int(re.search(r"mechanisms:\s+(\d+) marginal boards", out).group(1))
    protected = int(re.search(r"(\d+) boards protected for good", out).group(1))
    issued = int(re.search(r"serials:\s+(\d+) issued", out).group(1))
    # The variant really had boards of each kind: the invariants were not met vacuously.
    assert marginal >= 40 and protected >= 5 and issued >= 300, out
    assert "'lower-flash-clock'" in re.search(r"recoveries: +(\{.*\})", out).group(1)


@pytest.mark.skipif(os.geteuid() != 0, reason="the resource-fault soak mounts a tmpfs for the state directory: root")
def test_short_resource_fault_soak_holds_every_invariant():
    """The state directory's filesystem filled and freed, the journal locked past the busy timeout
    and released, the wall clock stepped two days back and forward, between SIGKILLs: gangd never
    exits on its own, touches no board without its record, leaves no record incomplete, takes
    writes again within seconds and times no step by the wall clock."""
    out = soak("--resource-faults", "--boards", "40", "--ports", "4", "--kills", "3", "--seed", "3")
    assert_zero(
        out,
        *COMMON,
        "gangd exited on its own",
        "resumed later than 10 s after the resource",
        "boards touched without a record",
        "programmed boards' records incomplete",
        "step durations off by a clock step",
    )
    assert re.search(r"resource faults: 3 \(disk-full, locked, clock-step\); bit: 3;", out), out
