"""Cancel gangd exactly while a simulated board burns a fuse word, and prove the cancel got there.

The board's `burn_starting` hook (gangd/sim/board.py) runs on the board's thread when an
efuse-program-once is about to burn, before the burn's time passes and before the reply. At the
chosen word it runs `act` (a cancel, a SIGTERM) on the trio thread, then holds the burn until the
station's board source has been cancelled: the cancel is proven to have reached the station while
that word's command was in flight, with no sleep guessing when that might be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import trio

from gangd.core.events import PortEvent
from gangd.sim import SimHub
from gangd.sim.board import SimBoard
from gangd.sim.source import SimHubSource

HOLD_S = 20  # how long a burn is held for the cancel at most; the test fails if it is not enough


class MidBurn:
    def __init__(self, board: SimBoard, word: int, act: Callable[[], object]) -> None:
        """At the burn of the `word`-th word (0-based, in the order gangd burns them), `act()`."""
        self.board, self.word, self.act = board, word, act
        self.token = trio.lowlevel.current_trio_token()
        self.cancelled = threading.Event()  # the station's board source saw the cancel
        self.index: int | None = None  # the fuse word in flight when `act` ran
        self.burned_before: int | None = None  # efuse-program-once replies by then
        self.held: bool | None = None  # the cancel arrived while the burn was held
        self._starts = 0
        board.burn_starting = self._starting

    def _starting(self, index: int) -> None:
        self._starts += 1
        if self._starts != self.word + 1:
            return
        self.index = index
        self.burned_before = len(self.board.commands("efuse-program-once"))
        trio.from_thread.run_sync(self.act, trio_token=self.token)
        self.held = self.cancelled.wait(HOLD_S)

    def source(self, hub: SimHub):
        """The hub's board source, noting when it is cancelled (the station is being torn down)."""

        async def run(emit: Callable[[PortEvent], None], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
            try:
                await SimHubSource(hub).run(emit, task_status=task_status)
            finally:
                self.cancelled.set()

        return run

    def assert_mid_burn(self) -> None:
        """The cancel came with this word's command in flight (its reply not yet sent)."""
        assert self.index is not None, "the chosen fuse word was never burned"
        assert self.held, f"the cancel did not reach the station within {HOLD_S} s of the burn of word {self.index}"
        assert self.burned_before == self.word, (self.burned_before, self.word)
