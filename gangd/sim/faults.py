"""Fault injection for simulated boards and ports.

A fault is written as `KIND[:key=value,...]`, the same on the command line, in config and in tests:

    status:cmd=flash-erase-region,code=20106,nth=1+2   the 1st and 2nd erase fail with 20106
    status:cmd=flash-erase-region,code=20106,p=0.2     each erase fails with probability 0.2
    status:cmd=write-memory,code=20106,after=16384     a write programs 16 KiB, then fails with 20106
    no-response:cmd=write-memory,nth=1                 the first write-memory gets no answer at all
    hang:cmd=write-memory                              the board stops answering until re-plugged
    disconnect:cmd=write-memory,after=8192             unplugged 8 KiB into the data phase
    corrupt-readback:p=0.05                            a read-memory returns one flipped bit
    corrupt-readback:nth=1,erased=1                    the first read-memory returns all 0xFF (a read
                                                       path answering erased data: a wrong blank check)
    malformed:cmd=read-memory,shape=halfway            a reply the host cannot parse (see MALFORMED_SHAPES)
    no-reenumerate                                     after the jump the flashloader never appears
    slow-flash:factor=3                                program and erase take 3x the model
    otp:index=24,value=0x1234abcd[,locked=1]           a word already burned before we got the board
    marginal-read:max-mhz=100                          reads above 100 MHz flip bits on this board
    write-protect:persist=power                        block-protect bits set in the flash's status
                                                       register: `power` (volatile: cleared by a power
                                                       cycle or replug, not by a reset) or `always`
    hab:bad-signature                                  HAB finds the signature of every signed image bad
                                                       (the simulator's pretend signature, sim/hab.py)
    hab:wrong-srk                                      the part already holds another key's SRK_HASH
    foreign-node:nth=1                                 (emulated hidraw only) the node of the 1st
                                                       enumeration answers HIDIOCGRAWINFO with another
                                                       device's ids, as when a node number is reused
                                                       between the hotplug event and the open

The last two are mechanisms, not dice: the simulated flashloader then fails the way NXP's does
(20106 after an erase or a page program whose read-back differs), see `nor_flash.py`.

`nth` counts the matching commands this rule has seen (1-based), `p` draws from the rule's own
seeded random generator, and with neither the rule fires every time. A plan can belong to a board
(the trouble travels with the board) or to a hub port (a flaky port fails whichever board sits in it).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field

# Kinds that fire when a command arrives, by the command's blhost/sdphost name.
COMMAND_KINDS = {"status", "no-response", "hang", "disconnect", "malformed"}
# Ways a reply can be wrong, for `malformed:cmd=...,shape=...` (HID only).
MALFORMED_SHAPES = ("truncated", "oversized", "wrong-id", "lying-length", "unknown-status", "halfway", "garbage")
KINDS = COMMAND_KINDS | {
    "corrupt-readback",
    "no-reenumerate",
    "slow-flash",
    "otp",
    "marginal-read",
    "write-protect",
    "foreign-node",
    "hab",
}
PERSISTENCE = ("power", "always")
HAB_MODES = (
    "bad-signature",
    "wrong-srk",
)  # see sim/hab.py  # write-protect: volatile or non-volatile block-protect bits

COMMAND_NAMES = {
    # flashloader (blhost names)
    "flash-erase-all",
    "flash-erase-region",
    "read-memory",
    "write-memory",
    "fill-memory",
    "get-property",
    "set-property",
    "reset",
    "efuse-program-once",
    "efuse-read-once",
    "configure-memory",
    "execute",
    "call",
    "flash-read-resource",
    "receive-sb-file",
    # ROM (sdphost names)
    "read-register",
    "write-register",
    "write-file",
    "error-status",
    "write-csf",
    "write-dcd",
    "skip-dcd-header",
    "jump-address",
}


class FaultSpecError(ValueError):
    """A fault description that cannot be understood; the message says which part and why."""


@dataclass
class FaultRule:
    kind: str
    command: str | None = None
    code: int | None = None
    nth: frozenset[int] = frozenset()
    probability: float | None = None
    after: int = 0
    factor: float = 1.0
    index: int | None = None
    fuse: str | None = None
    value: int = 0
    locked: bool = False
    erased: bool = False
    shape: str = "garbage"
    max_mhz: float | None = None
    persist: str = "power"
    mode: str = ""  # hab: bad-signature | wrong-srk
    spec: str = ""
    seen: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def matches(self, kind: str, command: str | None = None) -> bool:
        return self.kind == kind and (self.command is None or self.command == command)

    def choose(self, count: int) -> int:
        """A position in [0, count) from the rule's own seeded generator (e.g. which bit to flip)."""
        return self._rng.randrange(count)

    def roll(self) -> bool:
        """Count one occurrence and decide whether the rule fires on it."""
        self.seen += 1
        if self.nth:
            fire = self.seen in self.nth
        elif self.probability is not None:
            fire = self._rng.random() < self.probability
        else:
            fire = True
        if fire:
            self.fired += 1
        return fire


def _int(text: str, spec: str, key: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {key}={text!r} is not an integer") from None


def _number(text: str, spec: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {key}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise FaultSpecError(f"fault {spec!r}: {key}={text!r} is not a finite number")
    return value


def parse_fault(spec: str, seed: int | None = None) -> FaultRule:
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultSpecError(f"fault {spec!r}: unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})")
    rule = FaultRule(kind=kind, spec=spec.strip())
    rule._rng = random.Random(f"{seed}:{spec}")
    if kind == "hab":
        if rest.strip() not in HAB_MODES:
            raise FaultSpecError(f"fault {spec!r}: hab needs one of {', '.join(HAB_MODES)}")
        rule.mode = rest.strip()
        return rule
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, text = item.partition("=")
        if not eq:
            raise FaultSpecError(f"fault {spec!r}: {item!r} is not key=value")
        if key == "cmd":
            if text not in COMMAND_NAMES:
                raise FaultSpecError(f"fault {spec!r}: unknown command {text!r}")
            rule.command = text
        elif key == "code":
            rule.code = _int(text, spec, key)
        elif key == "nth":
            rule.nth = frozenset(_int(n, spec, key) for n in text.split("+"))
            if min(rule.nth) < 1:
                raise FaultSpecError(f"fault {spec!r}: nth counts from 1 (nth=1+3: the 1st and 3rd)")
        elif key == "p":
            rule.probability = _number(text, spec, key)
            if not 0.0 <= rule.probability <= 1.0:
                raise FaultSpecError(f"fault {spec!r}: p must be between 0 and 1")
        elif key == "after":
            rule.after = _int(text, spec, key)
            if rule.after < 0:
                raise FaultSpecError(f"fault {spec!r}: after counts bytes, 0 or more")
        elif key == "factor":
            rule.factor = _number(text, spec, key)
            if rule.factor <= 0:
                raise FaultSpecError(f"fault {spec!r}: factor must be more than 0")
        elif key == "index":
            rule.index = _int(text, spec, key)
        elif key == "fuse":
            rule.fuse = text
        elif key == "value":
            rule.value = _int(text, spec, key)
        elif key == "shape":
            if text not in MALFORMED_SHAPES:
                raise FaultSpecError(f"fault {spec!r}: shape must be one of {', '.join(MALFORMED_SHAPES)}")
            rule.shape = text
        elif key == "max-mhz":
            rule.max_mhz = _number(text, spec, key)
            if rule.max_mhz <= 0:
                raise FaultSpecError(f"fault {spec!r}: max-mhz must be positive")
        elif key == "persist":
            if text not in PERSISTENCE:
                raise FaultSpecError(f"fault {spec!r}: persist must be one of {', '.join(PERSISTENCE)}")
            rule.persist = text
        elif key == "locked":
            rule.locked = text not in ("0", "false", "no")
        elif key == "erased":
            rule.erased = text not in ("0", "false", "no")
        else:
            raise FaultSpecError(f"fault {spec!r}: unknown key {key!r}")
    if kind == "status" and rule.code is None:
        raise FaultSpecError(f"fault {spec!r}: status needs code=N")
    if kind in COMMAND_KINDS and rule.command is None and kind != "hang":
        raise FaultSpecError(f"fault {spec!r}: {kind} needs cmd=NAME")
    if kind == "marginal-read" and rule.max_mhz is None:
        raise FaultSpecError(f"fault {spec!r}: marginal-read needs max-mhz=N")
    if kind == "otp" and rule.index is None and rule.fuse is None:
        raise FaultSpecError(f"fault {spec!r}: otp needs index=N or fuse=NAME")
    return rule


class FaultPlan:
    """The rules for one board or one port. Thread-safe: a port's plan outlives its boards."""

    def __init__(self, specs: list[str] | tuple[str, ...] = (), seed: int | None = None) -> None:
        self.rules = [parse_fault(spec, seed) for spec in specs]
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def fire(self, kind: str, command: str | None = None) -> FaultRule | None:
        """The first rule of this kind that fires for the command, counting the occurrence."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(kind, command) and rule.roll():
                    return rule
        return None

    def of_kind(self, kind: str) -> list[FaultRule]:
        return [rule for rule in self.rules if rule.kind == kind]

    def fired_counts(self) -> dict[str, int]:
        with self._lock:
            return {rule.spec: rule.fired for rule in self.rules}


class CombinedFaults:
    """A board's own plan followed by its port's plan: either may fire."""

    def __init__(self, *plans: FaultPlan | None) -> None:
        self.plans = [plan for plan in plans if plan]

    def fire(self, kind: str, command: str | None = None) -> FaultRule | None:
        for plan in self.plans:
            rule = plan.fire(kind, command)
            if rule is not None:
                return rule
        return None

    def of_kind(self, kind: str) -> list[FaultRule]:
        return [rule for plan in self.plans for rule in plan.of_kind(kind)]
