"""A gangd trace: one job's USB conversation and port events, as a pcapng file and back.

The file is ordinary pcapng (`pcapng.py`) that Wireshark and tshark open: the reports on a usbmon
interface, gangd's events on a second one, and the job (port, board, result, gangd's version) in
the section header's comments, once as a readable line and once as JSON after `META_PREFIX`, which
is what `gangd trace show` and the replayed board read.

`payload = "hash"` (a trace safe to send): every data-phase report keeps its header only (the
packet's original length says how long it was, as a capture with a short snap length would), and
each run of data reports gets one `data` event with its byte count and sha256. Command and
response reports (fuse words among them) are kept whole.

A job whose conversation passed its memory cap (`[trace] max_job_mb`, conversation.py) has a
`dropped` event where reports are missing: after its start, before its latest reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gangd.config import files
from gangd.trace import pcapng

META_PREFIX = "gangd-trace-meta "
OUT, IN, EVENT = "out", "in", "event"
HASHED_COMMENT = 'payload hashed (payload = "hash"): header only, see the data event after the run'

# Report ids (spsdk mboot/protocol/bulk_protocol.py ReportId; sdp/protocol/bulk_protocol.py HID_REPORT).
MBOOT_DATA_OUT, MBOOT_DATA_IN = 2, 4
SDP_DATA = 2  # SDP's DATA report (write-file, write-dcd): the image bytes sent to the ROM
_DATA_OUT = (MBOOT_DATA_OUT, SDP_DATA)


class TraceError(ValueError):
    """The file is not a gangd trace, or is cut short: one line naming the file and the problem."""


@dataclass(slots=True)
class Entry:
    kind: str  # OUT | IN | EVENT
    t_ns: int  # wall-clock nanoseconds
    data: bytes = b""  # the report (its header only where the payload was hashed)
    length: int = 0  # the report's length on the wire
    event: dict[str, Any] = field(default_factory=dict)

    @property
    def hashed(self) -> bool:
        return len(self.data) < self.length


@dataclass
class Trace:
    meta: dict[str, Any]
    entries: list[Entry]
    path: str = ""

    def reports(self) -> list[Entry]:
        return [e for e in self.entries if e.kind != EVENT]


def is_data_report(report: bytes, inbound: bool, stage_protocol: str) -> bool:
    """A report carrying data-phase bytes (images, read-back), not a command or a response."""
    if not report:
        return False
    if inbound:
        return stage_protocol == "mboot" and report[0] == MBOOT_DATA_IN
    return report[0] in _DATA_OUT


def describe_event(event: dict[str, Any]) -> str:
    """One readable line for an event (the packet comment Wireshark shows)."""
    try:
        return _describe(event)
    except (KeyError, ValueError, TypeError):  # not an event gangd writes: show it as it is
        return json.dumps(event, sort_keys=True)


def _describe(event: dict[str, Any]) -> str:
    kind = event.get("event")
    if kind in ("add", "remove"):
        ids = f"{event.get('vid', 0):04x}:{event.get('pid', 0):04x}"
        return (
            f"udev {kind} port {event.get('port')} {ids} stage {event.get('stage')} "
            f"node {event.get('devnode')} serial {event.get('serial')}"
        )
    if kind == "step":
        return f"step {event.get('step')}"
    if kind == "step-failed":
        return f"step {event.get('step')} failed ({event.get('class')}): {event.get('action')}"
    if kind == "power-cycle":
        return "gangd cycles the port's power"
    if kind == "clock-fallback":
        words = " ".join(event.get("option_words") or [])
        return f"clock fallback: flash read clock lowered to {event.get('flash_mhz')} MHz (option words {words})"
    if kind == "data":
        return f"data {event['dir']}: {event['bytes']} bytes in {event['reports']} reports, sha256 {event['sha256']}"
    if kind == "dropped":
        return (
            f"{event['reports']} reports ({event['bytes']} bytes) not kept here: the job's conversation passed"
            f" its memory cap ({event['cap']} bytes, [trace] max_job_mb); the trace keeps its start and its end"
        )
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k != "event")
    return f"{kind} {rest}".strip()


# A report's options, by (inbound, hashed): its direction, and the comment of a hashed report.
_TAILS = {
    (inbound, hashed): pcapng.ReportTail(pcapng.report_options(inbound, HASHED_COMMENT if hashed else None))
    for inbound in (False, True)
    for hashed in (False, True)
}


def header(meta: dict[str, Any]) -> bytes:
    """The file's section header (the job, as a line and as JSON) and its two interfaces."""
    summary = (
        f"gangd {meta.get('version')} trace: job {meta.get('job')} on port {meta.get('port')}"
        f" ({meta.get('label')}), board {meta.get('board') or '-'} serial {meta.get('serial') or '-'},"
        f" {meta.get('family')}: {meta.get('result')}"
        + (f" at {meta['step']}: {meta['reason']}" if meta.get("reason") else "")
    )
    return b"".join(
        (
            pcapng.section_header(
                [summary, META_PREFIX + json.dumps(meta, sort_keys=True)], f"gangd {meta.get('version')}"
            ),
            pcapng.interface(pcapng.LINKTYPE_USB_LINUX_MMAPPED, f"usbmon{meta.get('bus', 0)}", "HID reports (usbmon)"),
            pcapng.interface(pcapng.LINKTYPE_USER0, "gangd", "gangd events: udev, steps, power cycles (JSON)"),
        )
    )


_DUMPS = json.JSONEncoder(sort_keys=True).encode  # json.dumps(..., sort_keys=True) builds one per call


def encode(
    meta: dict[str, Any],
    segments: Sequence[list[Any]],
    events: Sequence[tuple[int, int, dict[str, Any]]],
    clock_ns: int = 0,
    hash_payload: bool = False,
    lengths: Sequence[int] | None = None,
) -> list[bytes | bytearray]:
    """The whole file, as the pieces to write one after the other (`write_file`), from reports
    in segments (`[stamp, report, stamp, report, ...]`, gangd/trace/conversation.py) and events,
    each `(reports before it, t_ns, event)`, in order.

    A stamp is a report's time, `~time` for a report in; `clock_ns` turns stamps and events'
    times into wall-clock ns. `lengths`: each report's length on the wire, where the bytes held
    may be fewer (a hashed report read back from a file); else the bytes are the whole report.
    `hash_payload` (payload = "hash"): each data-phase report keeps its header only, and each run
    of them gets a `data` event with its byte count and sha256, after the run.

    Reports are padded with zeros to their endpoint's report size (mcu-boot sends 1016-byte
    reports for a 16-byte response): the padding is left out of the file, as a capture with a
    short snap length would, and the reader puts it back. A hashed report is marked.
    """
    parts: list[bytes | bytearray] = [header(meta)]
    busnum = int(meta.get("bus", 0))
    devnum = urb = number = 0  # the board's USB address; URB id (one per packet); reports so far
    address = {inbound: pcapng.usbmon_address(inbound, devnum, busnum) for inbound in (False, True)}
    # payload = "hash": the stage's protocol and the next stage's (an add switches at the next
    # report out: reports in before it are the old stage's), and the run being hashed
    protocol, pending = "mboot", None
    data_in = MBOOT_DATA_IN  # the id of a data report in, in this protocol (SDP's are never data)
    run: list[memoryview] = []  # the open run's payloads, hashed as one when it closes (in C)
    run_in = False  # its direction

    def put_event(t_ns: int, item: dict[str, Any]) -> None:
        nonlocal urb, devnum, address
        urb += 1
        if item.get("event") == "add":
            devnum = devnum % 127 + 1  # a new address at every enumeration, as the kernel gives
            address = {inbound: pcapng.usbmon_address(inbound, devnum, busnum) for inbound in (False, True)}
        body = _DUMPS(item).encode()
        parts.append(pcapng.enhanced_packet(1, t_ns, body, len(body), [describe_event(item)]))

    def close_run(t_ns: int) -> None:
        payload = b"".join(run)
        direction, digest = IN if run_in else OUT, hashlib.sha256(payload).hexdigest()
        put_event(
            t_ns, {"event": "data", "dir": direction, "bytes": len(payload), "reports": len(run), "sha256": digest}
        )
        run.clear()

    def put_placed(t_ns: int, item: dict[str, Any]) -> None:
        nonlocal pending
        if item.get("event") == "add":
            pending = item.get("protocol") or protocol
        if run:
            close_run(t_ns)
        put_event(t_ns, item)

    packet, tails = pcapng.report_packet, _TAILS
    events_left = iter(events)
    event = next(events_left, None)
    t = 0  # the last packet's time
    for segment in segments:
        pairs = iter(segment)
        for stamp, report in zip(pairs, pairs, strict=True):
            while event is not None and event[0] <= number:
                t = event[1] + clock_ns
                put_placed(t, event[2])
                event = next(events_left, None)
            inbound = stamp < 0
            t = (~stamp if inbound else stamp) + clock_ns
            length = len(report) if lengths is None else lengths[number]
            number += 1
            held = report
            if hash_payload:
                if not inbound and pending is not None:
                    protocol, pending = pending, None
                    data_in = MBOOT_DATA_IN if protocol == "mboot" else -1
                first = report[0] if report else -1
                if first == data_in if inbound else first in _DATA_OUT:
                    if run and run_in is not inbound:
                        close_run(t)
                    run_in = inbound
                    if protocol == "mboot" and len(report) >= 4:  # id, pad, u16 length, payload
                        run.append(memoryview(report)[4 : 4 + (report[2] | report[3] << 8)])
                        held = report[:4]
                    else:
                        run.append(memoryview(report)[1:])
                        held = report[:4] if protocol == "mboot" else report[:1]
                elif run:
                    close_run(t)
            urb += 1
            if len(held) < length:  # hashed: its header only (the packet's length says the rest)
                parts += packet(urb, address[inbound], t, length, held, tails[inbound, True])
                continue
            if held and not held[-1]:  # zero padding: up to the last non-zero byte (a bit count, in C)
                held = held[: (int.from_bytes(held, "little").bit_length() + 7) >> 3]
            parts += packet(urb, address[inbound], t, length, held, tails[inbound, False])
    while event is not None:
        t = event[1] + clock_ns
        put_placed(t, event[2])
        event = next(events_left, None)
    if run:
        close_run(t)
    return parts


def from_entries(entries: Iterable[Entry]) -> tuple[list[Any], list[tuple[int, int, dict[str, Any]]], list[int]]:
    """Entries (a trace read back, a test's) as `encode` takes them: one segment of reports, the
    events in place, and the reports' lengths on the wire."""
    segment: list[Any] = []
    events: list[tuple[int, int, dict[str, Any]]] = []
    lengths: list[int] = []
    for entry in entries:
        if entry.kind == EVENT:
            events.append((len(lengths), entry.t_ns, entry.event))
            continue
        segment += (~entry.t_ns if entry.kind == IN else entry.t_ns, entry.data)
        lengths.append(entry.length)
    return segment, events, lengths


def write(path: str, meta: dict[str, Any], entries: Iterable[Entry]) -> int:
    """`entries` as a trace file at `path` (see `write_file`); returns the file's size."""
    segment, events, lengths = from_entries(entries)
    return write_file(path, encode(meta, [segment], events, lengths=lengths))


def write_file(path: str, parts: list[bytes | bytearray]) -> int:
    """Write the pieces atomically (a reader never sees half a trace); returns the file's size.
    Joined first: one copy in C is cheaper than the kernel walking hundreds of pieces (writev)."""
    data = memoryview(b"".join(parts))
    size = len(data)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            while data:
                data = data[os.write(fd, data) :]  # it may write less than asked
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk keeps no half trace: its bytes are freed
            os.unlink(tmp)
        raise
    return size


def read(path: str) -> Trace:
    try:
        data = files.read_bytes(Path(path))
    except files.NotAFile as exc:
        raise TraceError(str(exc)) from None
    try:
        capture = pcapng.read(data, path)
    except pcapng.PcapngError as exc:
        raise TraceError(str(exc)) from None
    meta_text = next((c for c in capture.comments if c.startswith(META_PREFIX)), None)
    if meta_text is None:
        raise TraceError(
            f"{path}: a pcapng file, but not a gangd trace (no {META_PREFIX.strip()} comment;"
            f" written by {capture.userappl or 'an unknown program'})"
        )
    try:
        meta = json.loads(meta_text[len(META_PREFIX) :])
    except ValueError as exc:
        raise TraceError(f"{path}: the gangd-trace-meta comment is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{path}: the gangd-trace-meta comment is not a JSON object")
    if capture.linktypes[:2] != [pcapng.LINKTYPE_USB_LINUX_MMAPPED, pcapng.LINKTYPE_USER0]:
        raise TraceError(f"{path}: unexpected interfaces (link types {capture.linktypes}) for a gangd trace")
    entries: list[Entry] = []
    for n, packet in enumerate(capture.packets, 1):
        if packet.interface == 1:
            try:
                event = json.loads(packet.data)
            except ValueError:
                raise TraceError(f"{path}: event packet {n} is not JSON") from None
            problem = _event_problem(event)
            if problem:
                raise TraceError(f"{path}: event packet {n}: {problem}")
            entries.append(Entry(EVENT, packet.ts_ns, event=event))
            continue
        if len(packet.data) < 64:
            raise TraceError(f"{path}: packet {n} is shorter than its usbmon header")
        fields = pcapng.USBMON_HEADER.unpack_from(packet.data)
        inbound = bool(fields[3] & pcapng.USB_DIR_IN)
        length = fields[11]
        data = packet.data[64:]
        if HASHED_COMMENT not in packet.comments:
            data = data.ljust(length, b"\0")  # the zero padding left out of the file
        entries.append(Entry(IN if inbound else OUT, packet.ts_ns, data, length))
    return Trace(meta, entries, path)


_EVENT_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "add": {"vid": int, "pid": int},
    "remove": {"vid": int, "pid": int},
    "data": {"dir": str, "bytes": int, "reports": int, "sha256": str},
    "dropped": {"reports": int, "bytes": int, "cap": int},
}


def _event_problem(event: Any) -> str | None:
    """What is wrong with an event read from a file (None: nothing), before anyone uses it."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return "not an event object"
    for key, kind in _EVENT_FIELDS.get(event["event"], {}).items():
        if not isinstance(event.get(key), kind) or isinstance(event.get(key), bool):
            return f"{event['event']} event without a valid {key!r}"
    return None
