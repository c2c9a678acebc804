"""The journal as a station state: writable or not, and why; resumes by itself.

A write that fails for a host fault (disk full, read-only, I/O error, locked) sets the store's
`fault` (records.py). The keeper follows it: while there is one, it retries what the journal owes
every `retry_s` (on trio's clock: monotonic, a wall-clock step changes nothing) and the station
starts no job; once a retry succeeds, held completions are written, the metric goes back to 1 and
waiting boards get their jobs. It is the station's `JournalStatus` (gangd.core.types).
"""

from __future__ import annotations

import structlog
import trio

from gangd.service.metrics import Metrics
from gangd.service.records import RecordStore

log = structlog.get_logger("gangd.service.journal")

# Our choice: the issue asks that the station resume "within seconds" of the disk having room;
# a retry a second is one small write a second while the fault lasts.
RETRY_S = 1.0


class JournalKeeper:
    def __init__(self, store: RecordStore, metrics: Metrics | None = None, retry_s: float = RETRY_S) -> None:
        self.store = store
        self.metrics = metrics
        self.retry_s = retry_s
        self._writable = trio.Event()
        self._writable.set()
        self._wake = trio.Event()
        self._told: str | None = None  # the fault last logged, so each is logged once

    @property
    def writable(self) -> bool:
        return self.store.fault is None and not self.store.held

    @property
    def reason(self) -> str | None:
        return self.store.fault

    def wake(self) -> None:
        """A write just failed: look now rather than at the next tick."""
        self._wake.set()

    async def wait_writable(self) -> None:
        while not self.writable:
            if self._writable.is_set():
                self._writable = trio.Event()
            await self._writable.wait()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self.writable:
                self._fault()
                if await trio.to_thread.run_sync(self.store.recover):
                    self._recovered()
            if self.writable:  # a waiter that saw a fault the store cleared itself goes on too
                self._writable.set()
            self._export()
            with trio.move_on_after(self.retry_s):
                await self._wake.wait()
            self._wake = trio.Event()

    def _fault(self) -> None:
        if self.store.fault and self.store.fault != self._told:
            self._told = self.store.fault
            log.error(
                "journal cannot be written: no new job starts until it can",
                reason=self.store.fault,
                held_records=len(self.store.held),
            )

    def _recovered(self) -> None:
        log.warning("journal writable again: held records written, jobs start again", was=self._told)
        self._told = None
        self._writable.set()

    def _export(self) -> None:
        if self.metrics is not None:
            self.metrics.journal_writable.set(int(self.writable))
            self.metrics.journal_held.set(len(self.store.held))
