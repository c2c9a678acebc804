"""What an MCU bootloader status code means and what gangd does about it: the lookup.

The words are data, in `explanations.toml` beside this module (shipped in the wheel); this module
reads them once and renders an `Explanation` for a code: the spsdk name, the meaning in plain words,
likely causes, remedies, and gangd's recovery class and action (from `gangd.engine.recovery`). The
codes a production line meets are written by hand there; every other code spsdk knows
(`spsdk.mboot.error_codes.StatusCode`) gets an entry derived from its spsdk description, the group
of codes it belongs to and its recovery class. The SDP ROM's HAB words are written there too.

The family adapts the wording where the part matters, e.g. the FlexSPI max-frequency codes of the
option word (on mimxrt1020: 7 = 133 MHz, 6 = 100 MHz, 5 = 80 MHz, 3 = 60 MHz, 1 = 30 MHz).
`one_line()` gives one short sentence to append to a failed board record's reason; `gangd explain`
(gangd/cli/explain.py) prints the whole explanation.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from spsdk.mboot.error_codes import StatusCode

from gangd.config.flexspi import fallback_codes, frequency_table, has_clock_table
from gangd.engine import recovery
from gangd.trace import diverged_at, divergence_reason

DEFAULT_FAMILY = "mimxrt1020"
ONE_LINE_MAX = 160
DATA_FILE = "explanations.toml"
NOT_A_FAILURE = "none"
# The placeholders the recovery classes' action text may use: gangd's recovery action names.
ACTION_NAMES = {
    "reconfigure": recovery.RECONFIGURE,
    "reset": recovery.RESET,
    "power_cycle": recovery.POWER_CYCLE,
    "replug": recovery.REPLUG,
}


@dataclass(frozen=True)
class Explanation:
    code: int
    name: str  # spsdk's label, e.g. "FlexSPINORCommandFailure"
    meaning: str
    causes: tuple[str, ...]
    remedies: tuple[str, ...]
    recovery_class: str  # recovery.TRANSIENT / BOARD / PERMANENT, or "none" for a success code
    action: str  # what gangd does, in words


@dataclass(frozen=True)
class Entry:
    """A hand-written entry; its text may hold {placeholders} from `_context`."""

    meaning: str
    causes: tuple[str, ...]
    remedies: tuple[str, ...]
    short: str  # one_line() text, after "CODE: "
    action: str | None = None  # replaces the class's action text


@dataclass(frozen=True)
class Group:
    """The words for the codes in `ranges` (inclusive) that have no hand-written entry."""

    subsystem: str
    ranges: tuple[tuple[int, int], ...]
    cause: str
    remedy: str

    def holds(self, code: int) -> bool:
        return any(first <= code <= last for first, last in self.ranges)


@dataclass(frozen=True)
class ClassWords:
    cause: str
    remedy: str
    action: str


@dataclass(frozen=True)
class Data:
    """explanations.toml, typed."""

    success: frozenset[int]
    generic: frozenset[int]  # codes recovery classifies by hand, left to their group's words on purpose
    classes: dict[str, ClassWords]
    codes: dict[int, Entry]
    groups: tuple[Group, ...]
    fallback: Group
    hab: dict[int, Explanation]


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{DATA_FILE}: expected a list of strings, got {value!r}")
    return tuple(value)


def parse(doc: dict[str, Any]) -> Data:
    """The typed form of a parsed explanations.toml; raises KeyError/ValueError where it is malformed."""
    classes = {
        name: ClassWords(t["cause"], t["remedy"], t["action"].format(**ACTION_NAMES))
        for name, t in doc["class"].items()
    }
    codes = {
        int(key, 10): Entry(
            meaning=t["meaning"],
            causes=_texts(t["causes"]),
            remedies=_texts(t["remedies"]),
            short=t["short"],
            action=t.get("action"),
        )
        for key, t in doc["codes"].items()
    }
    groups = tuple(
        Group(g["subsystem"], tuple((int(a), int(b)) for a, b in g["ranges"]), g["cause"], g["remedy"])
        for g in doc["groups"]
    )
    fb = doc["fallback"]
    hab = {
        int(key, 16): Explanation(
            int(key, 16),
            t["name"],
            t["meaning"],
            _texts(t["causes"]),
            _texts(t["remedies"]),
            t["class"],
            t["action"],
        )
        for key, t in doc["hab"].items()
    }
    return Data(
        success=frozenset(int(t) for t in doc["success"]),
        generic=frozenset(int(t) for t in doc["generic"]),
        classes=classes,
        codes=codes,
        groups=groups,
        fallback=Group(fb["subsystem"], (), fb["cause"], fb["remedy"]),
        hab=hab,
    )


@functools.cache
def data() -> Data:
    """explanations.toml, read once."""
    text = resources.files("gangd.engine").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse(tomllib.loads(text))


# --- family-dependent wording --------------------------------------------------------------------


def _flexspi_base(family: str) -> int | None:
    """Where the ROM boots FlexSPI NOR from (the family's facts; else spsdk's first window)."""
    try:
        from gangd.config.family import load_family

        window = load_family(family).flexspi
    except Exception:
        return None
    return window.start if window is not None else None


def _context(family: str) -> dict[str, str]:
    """The placeholders the hand-written entries use, worded for `family`."""
    # One frequency table for gangd, the simulator and this text: family_facts/flexspi_clocks.toml.
    if not has_clock_table(family):  # no FlexSPI clock codes in its facts (internal flash families)
        none = f"{family} has no FlexSPI clock table in gangd's facts: no ladder to step down"
        return {"family": family, "steps": none, "fast": none, "slower": none, "flexspi": _window(family)}
    table = frequency_table(family)
    ladder = [7, *fallback_codes(family, 7)]
    steps = " -> ".join(f"{c} ({table[c]} MHz)" for c in ladder)
    fast = f"on {family} 0xC0000007 = code 7 = {table[7]} MHz"
    slower = f"option 0xC000000{ladder[1]} = {table[ladder[1]]} MHz"
    return {"family": family, "steps": steps, "fast": fast, "slower": slower, "flexspi": _window(family)}


def _window(family: str) -> str:
    base = _flexspi_base(family)
    return (
        f"on {family} the FlexSPI window starts at {base:#010x}"
        if base is not None
        else f"see the memory map of {family}"
    )


# --- generic entries -----------------------------------------------------------------------------


def _words(klass: str) -> ClassWords:
    """A class's words; a class without its own (power) is worded like a board failure."""
    classes = data().classes
    return classes.get(klass, classes[recovery.BOARD])


def group(code: int) -> Group:
    """The first group whose ranges hold `code`, else the fallback."""
    return next((g for g in data().groups if g.holds(code)), data().fallback)


def description(code: int) -> str:
    """spsdk's description of a code without a repeated label prefix or a trailing full stop."""
    if code in data().hab:
        return "an SDP ROM HAB word"
    member = _member(code)
    text = (member.description or "").strip()
    label = member.label.strip()
    if text.startswith(label + ":") and len(text) > len(label) + 1:
        text = text[len(label) + 1 :].strip()
    return text.rstrip(".")


def _plain(description: str) -> str:
    """The description without its subsystem prefix ("FLEXSPI: Device Timeout" -> "Device Timeout")."""
    prefix, sep, rest = description.partition(": ")
    return rest.strip() if sep and rest.strip() and len(prefix) <= 40 else description


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _generic(code: int, klass: str) -> Entry:
    g = group(code)
    plain = _plain(description(code))
    if code in data().success:
        return Entry(
            f"{g.subsystem} reports: {plain}. This is not a failure.",
            ("Nothing went wrong.",),
            ("None needed.",),
            f"{plain}, not a failure",
            "nothing to do, not a failure",
        )
    words = _words(klass)
    return Entry(
        f"{g.subsystem} reports: {plain}.",
        (_sentence(g.cause), words.cause),
        (_sentence(g.remedy), words.remedy),
        f"{plain} ({g.subsystem.removeprefix('The ')}, {klass} failure)",
    )


# --- public API ----------------------------------------------------------------------------------


def _member(code: int) -> StatusCode:
    if code not in StatusCode.tags():
        raise KeyError(f"unknown status code {code} ({code:#x}): spsdk does not know it")
    return StatusCode.from_tag(code)


def explain(code: int, family: str = DEFAULT_FAMILY) -> Explanation:
    """The explanation of a status code, worded for `family`. Raises KeyError for a code spsdk does not know."""
    if code in data().hab:  # the SDP ROM's HAB words
        return data().hab[code]
    member = _member(code)
    klass = recovery.classify(code)
    hand = data().codes.get(code)
    entry = hand or _generic(code, klass)
    if code in data().success:
        klass = NOT_A_FAILURE
    ctx = _context(family) if hand is not None else None

    def fmt(text: str) -> str:
        return text.format(**ctx) if ctx is not None else text

    return Explanation(
        code=code,
        name=member.label.strip(),
        meaning=fmt(entry.meaning),
        causes=tuple(fmt(c) for c in entry.causes),
        remedies=tuple(fmt(r) for r in entry.remedies),
        recovery_class=klass,
        action=fmt(entry.action) if entry.action else _words(klass).action,
    )


def _clip(text: str, limit: int = ONE_LINE_MAX) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def one_line(code: int, family: str = DEFAULT_FAMILY) -> str:
    """One short sentence (no newline, <= 160 characters) to append to a failed board record's reason."""
    _member(code)
    hand = data().codes.get(code)
    short = hand.short.format(**_context(family)) if hand is not None else _generic(code, recovery.classify(code)).short
    return _clip(f"{code}: {short}")


def explained(status: int, family: str) -> str:
    if (report := diverged_at(status)) is not None:  # a replayed board (gangd/trace)
        return divergence_reason(report)
    try:
        return one_line(status, family)
    except KeyError:
        return f"status {status} is unknown to spsdk"
