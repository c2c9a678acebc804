"""Deciding what to burn, from what the board's fuses already hold. Pure logic, no I/O.

OTP bits can only be set, so a word is in one of four states against the recipe's value:
equal (nothing to do), blank (burn), a subset of the value (burn the rest: only under `enforce`),
or holding a bit the value lacks (conflict: the part was provisioned for something else).
Every word is judged before any is burned, so a conflict anywhere means nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from gangd.config.recipe import FusePlan, FuseWord

OK = "ok"
BURN = "burn"
CONFLICT = "conflict"


@dataclass(frozen=True)
class FuseDecision:
    word: FuseWord
    current: int
    action: str

    @property
    def bits_to_burn(self) -> int:
        return self.word.value & ~self.current if self.action == BURN else 0


def decide(plan: FusePlan, readings: dict[int, int]) -> list[FuseDecision]:
    decisions = []
    for word in plan.words:
        current = readings[word.index]
        if current == word.value:
            action = OK
        elif current & ~word.value:
            action = CONFLICT
        elif current == 0 or plan.policy == "enforce":
            action = BURN
        else:
            action = CONFLICT  # partly burned under if-blank: a person must decide
        decisions.append(FuseDecision(word, current, action))
    return decisions


def conflict_reason(decisions: list[FuseDecision]) -> str | None:
    conflicts = [d for d in decisions if d.action == CONFLICT]
    if not conflicts:
        return None
    names = ", ".join(f"{d.word.name}=0x{d.current:08x} (wants 0x{d.word.value:08x})" for d in conflicts)
    what = (
        "a different SRK hash"
        if any(d.word.name.upper().startswith("SRK_HASH") for d in conflicts)
        else "different fuse values"
    )
    return f"already provisioned with {what}: {names}; nothing was burned"
