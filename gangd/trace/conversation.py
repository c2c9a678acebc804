"""One job's reports as they cross the board's handle: the tap's sink, on the board's hot path.

A report costs a timestamp and one append of the two (the report as the transport hands it over,
copied where it reuses a buffer) to a list. Nothing is encoded, hashed or formatted here: the
trace's file is built from these lists once, when the job has ended, in the writer thread
(gangd/trace/file.py `encode`). Measured against the alternatives (docs/PERFORMANCE.md, "Tracing
cost"): one bytearray plus arrays of offsets and times costs twice as much per report in CPython
(the buffer's growth copies it again and again), and a lock per report another eighth.

Without a lock, a report's time and bytes still stay together: they go in with one `+=` of a
pair, a single call under the GIL. A board's reports come from one thread at a time (trio's, for
a simulated board's socket; the port's worker thread on hidraw); only a hidraw step abandoned at
its deadline may still be finishing a read in its thread while the next step runs. Its report
then lands in the list with the others (at worst out of time order, if a segment changes at that
very moment); one that comes after the job has ended is let go.

Bounded: a job holds at most `max_bytes` of reports (`[trace] max_job_mb`). The list is cut into
segments of about an eighth of that; past the cap, the oldest segment after the first is
dropped, so the trace keeps the job's start (enumeration, ROM stage, flashloader, configuration)
and its latest reports (where it failed), and a `dropped` event in the file says how many
reports and bytes are missing between them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

SEGMENTS = 8  # the cap's granularity: what is dropped at a time is about an eighth of it
# A full report of these boards (mcu-boot's 1016-byte HID data reports with their header, SDP's
# 1025): sizes a segment in reports. What a segment holds is measured when it is closed, and the
# cap is kept on that.
REPORT_BYTES = 1024
# What holding a report costs besides its bytes: the bytes object's header, its time (an int)
# and two list slots, in CPython on 64 bits.
REPORT_OVERHEAD = 33 + 32 + 16


def when(stamp: int) -> int:
    """A stamp's time in ns (an inbound report's stamp is its time inverted: `~ns`)."""
    return ~stamp if stamp < 0 else stamp


def held_bytes(segment: list[Any]) -> int:
    """What a segment (`[stamp, report, stamp, report, ...]`) holds, in bytes."""
    return sum(map(len, segment[1::2])) + REPORT_OVERHEAD * (len(segment) // 2)


@dataclass(frozen=True)
class Dropped:
    """The reports a conversation let go past its cap: one run, right after its first segment."""

    at_ns: int  # the first dropped report's time (monotonic ns)
    reports: int
    size: int  # their bytes
    cap_bytes: int


@dataclass(frozen=True)
class Recording:
    """A closed conversation: its segments in time order, each `[stamp, report, ...]` (a stamp is
    a monotonic ns, `~ns` for a report in), and what was dropped between them."""

    segments: list[list[Any]]
    dropped: Dropped | None


class Conversation:
    """The `ReportTap` a traced job's handles feed (gangd/io/transport/fd_device.py)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._segment_bytes = max(1, max_bytes // SEGMENTS)
        self._segment_slots = 2 * max(1, self._segment_bytes // (REPORT_BYTES + REPORT_OVERHEAD))
        self._lock = threading.Lock()  # segment changes only
        self._reports: list[Any] = []  # the current segment
        self._segments = [self._reports]
        self._held = 0  # bytes held by the segments before the current one
        self._dropped: Dropped | None = None
        self._closed = False

    # --- the hot path (the board's handle, wherever its call runs) --------------------------------

    def sent(self, report: bytes | bytearray) -> None:
        reports = self._reports
        if len(reports) >= self._segment_slots:
            fresh = self._next_segment()
            if fresh is None:  # closed: a late report from a thread abandoned at a deadline
                return
            reports = fresh
        reports += (time.monotonic_ns(), report)

    def received(self, report: bytes | bytearray) -> None:
        reports = self._reports
        if len(reports) >= self._segment_slots:
            fresh = self._next_segment()
            if fresh is None:
                return
            reports = fresh
        reports += (~time.monotonic_ns(), report)

    # --- once per segment -----------------------------------------------------------------------

    def _next_segment(self) -> list[Any] | None:
        with self._lock:
            if self._closed:
                return None
            if len(self._reports) < self._segment_slots:  # another thread changed it first
                return self._reports
            self._held += held_bytes(self._reports)
            self._reports = []
            self._segments.append(self._reports)
            # Keep the first segment and the newest; let the oldest of the others go while they
            # and a full current one would pass the cap.
            while self._held + self._segment_bytes > self.max_bytes and len(self._segments) > 2:
                gone = self._segments.pop(1)
                size = held_bytes(gone)
                self._held -= size
                before = self._dropped
                self._dropped = Dropped(
                    when(gone[0]) if before is None else before.at_ns,
                    len(gone) // 2 + (before.reports if before else 0),
                    sum(map(len, gone[1::2])) + (before.size if before else 0),
                    self.max_bytes,
                )
            return self._reports

    def held(self) -> int:
        """Bytes held now (all segments), as the cap counts them."""
        with self._lock:
            return self._held + held_bytes(self._reports)

    def close(self) -> Recording:
        """The job has ended: what was recorded, handed over once; later reports are let go."""
        with self._lock:
            self._closed = True
            self._segment_slots = -1  # every later report takes the slow branch, which refuses it
            recording = Recording(self._segments, self._dropped)
            self._segments, self._reports = [], []
            return recording
