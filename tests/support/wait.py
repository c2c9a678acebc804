"""Condition waits: until a predicate holds, woken by a change signal, or polled with a deadline.

A test never sleeps for a guessed time: it waits for what it needs and, past the deadline, fails
with a message saying what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import trio

T = TypeVar("T")


class ChangeSignal(Protocol):
    """The station's `changes` (a version bumped on every change the views show)."""

    version: int

    async def wait(self, seen: int) -> int: ...


async def until(changes: ChangeSignal, predicate: Callable[[], T], what: str, timeout: float = 10) -> T:
    """`predicate()`'s first true value, re-read each time `changes` moves, never by a timer;
    an AssertionError naming `what` after `timeout` s."""
    with trio.move_on_after(timeout):
        while True:
            seen = changes.version
            value = predicate()
            if value:
                return value
            await changes.wait(seen)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Polls `condition` (for what has no signal to wait on: another process, a server) until it
    returns something true; an AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
