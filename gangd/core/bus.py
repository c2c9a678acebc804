"""The USB bus as it really is: each root port is a bandwidth domain.

A flashloader's two 1016-byte interrupt endpoints reserve periodic bandwidth; about 8 of them fill
one high-speed root port's budget (docs/FLASHLOADER.md, "USB"). The next one enumerates with its
ids but Linux refuses its HID interface ("Not enough bandwidth for new device state"), so no hidraw
node appears. ROM-stage boards (SDP) do not count. gangd therefore admits boards to the flashloader
stage per domain: a board waits in its ROM (port state "queued") until its root port has room.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import trio

DEFAULT_BUDGET = 8  # flashloader-stage boards per high-speed root port


def root_port(path: str) -> str:
    """A port's bandwidth domain: its bus and root port (`1-1.3` -> `1-1`, `3-2.4.1` -> `3-2`)."""
    return path.split(".", 1)[0]


class Admission:
    """Slots for flashloader-stage boards, per root port; `budget` None admits every board."""

    def __init__(self, budget: int | None = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._slots: dict[str, trio.Semaphore] = {}
        self.in_use: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()  # the most boards ever admitted at once, per domain

    async def enter(self, path: str, waiting: Callable[[], None]) -> None:
        """Until the port's domain has room (first come, first served); `waiting` is called first
        when the board has to wait."""
        domain = root_port(path)
        if self.budget is not None:
            slots = self._slots.setdefault(domain, trio.Semaphore(self.budget))
            if slots.value == 0:
                waiting()
            await slots.acquire()
        self.in_use[domain] += 1
        self.peak[domain] = max(self.peak[domain], self.in_use[domain])

    def leave(self, path: str) -> None:
        domain = root_port(path)
        self.in_use[domain] -= 1
        if self.budget is not None:
            self._slots[domain].release()

    def status(self) -> dict[str, dict[str, int | None]]:
        """Per domain seen so far: its budget and the flashloader-stage boards admitted now."""
        return {domain: {"budget": self.budget, "in_use": count} for domain, count in sorted(self.in_use.items())}
