"""The per-board data allocation policy, written once for both stores.

A board gets its own values if it got them before (an interrupted job's board comes back: the same
values; with a line database, at any station), else the next unused ones: a counter's next number
(`start`, then the highest number handed out + `step`), or the first line of a list file no board
has (the file may have been edited since). A list with no line left raises DataExhausted.

Our choice for a value whose job never finished: it stays the board's (it may sit in the board's
flash already), is handed back to that board when it returns, and to no other.

The station's SQLite store (gangd/service/records.py) and the line's PostgreSQL database
(gangd/service/line.py) each give the policy their own primitives (`Allocations`) inside their own
transaction; the caller commits, or rolls back when the policy raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gangd.config.recipe import BoardData
from gangd.core.errors import DataExhausted


class Allocations(Protocol):
    """One store's handed-out values, read and written inside the caller's transaction."""

    def lock(self, name: str) -> None:
        """Hold off every other allocator of `name` until the transaction ends."""

    def owned(self, name: str, board_id: str) -> str | None:
        """The value of `name` handed to `board_id` before, if any."""

    def last_seq(self, name: str) -> int | None:
        """The highest sequence number of `name` handed out, if any."""

    def used(self, name: str) -> set[str]:
        """Every value of `name` handed out."""

    def record(self, name: str, value: str, seq: int, board_id: str) -> None:
        """Hand `value` (number `seq`: the counter's number or the list's line index) to `board_id`."""


def list_values(path: str) -> list[str]:
    """The values of a list file: one per line; blank lines and # comments skipped."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]


def allocate(store: Allocations, board_id: str, entries: Iterable[BoardData], where: str = "") -> dict[str, str]:
    """The values of `entries` for `board_id`, by the policy above. `where` words the store in the
    exhausted-list message (" on the line")."""
    values: dict[str, str] = {}
    for entry in entries:
        store.lock(entry.name)
        own = store.owned(entry.name, board_id)
        if own is not None:
            values[entry.name] = own
            continue
        if entry.source == "counter":
            last = store.last_seq(entry.name)
            seq = entry.start if last is None else last + entry.step
            value = entry.format.format(seq)
        else:
            assert entry.list_file is not None  # the loader requires `list` for a list source
            used = store.used(entry.name)
            listed = list_values(entry.list_file)
            fresh = next(((n, v) for n, v in enumerate(listed) if v not in used), None)
            if fresh is None:
                raise DataExhausted(
                    f"the list of {entry.name} values is exhausted{where} ({entry.list_file}: "
                    f"all {len(listed)} handed out); add values to it"
                )
            seq, value = fresh
        store.record(entry.name, value, seq, board_id)
        values[entry.name] = value
    return values
