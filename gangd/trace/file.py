"""A gangd trace: one job's USB conversation and port events, as a pcapng file and back.

The file is ordinary pcapng (`pcapng.py`) that Wireshark and tshark open: the reports on a usbmon
interface, gangd's events on a second one, and the job (port, board, result, gangd's version) in
the section header's comments, once as a readable line and once as JSON after `META_PREFIX`, which
is what `gangd trace show` and the replayed board read.

`payload = "hash"` (a trace safe to send): every data-phase report keeps its header only (the
packet's original length says how long it was, as a capture with a short snap length would), and
each run of data reports gets one `data` event with its byte count and sha256. Command and
response reports (fuse words among them) are kept whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gangd.trace import pcapng

META_PREFIX = "gangd-trace-meta "
OUT, IN, EVENT = "out", "in", "event"
HASHED_COMMENT = 'payload hashed (payload = "hash"): header only, see the data event after the run'

# Report ids (spsdk mboot/protocol/bulk_protocol.py ReportId; sdp/protocol/bulk_protocol.py HID_REPORT).
MBOOT_DATA_OUT, MBOOT_DATA_IN = 2, 4
SDP_DATA = 2  # SDP's DATA report (write-file, write-dcd): the image bytes sent to the ROM


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
    return report[0] in (MBOOT_DATA_OUT, SDP_DATA)


def _payload(report: bytes, protocol: str) -> bytes:
    if protocol == "mboot" and len(report) >= 4:
        (length,) = struct.unpack_from("<H", report, 2)
        return report[4 : 4 + length]
    return report[1:]


def hashed(entries: Iterable[Entry]) -> list[Entry]:
    """The entries with data-phase payloads replaced by their header, length and sha256."""
    out: list[Entry] = []
    protocol = "mboot"
    pending: str | None = None
    run: tuple[str, Any, int, int] | None = None  # (direction, sha256, bytes, reports)

    def close_run(t_ns: int) -> None:
        nonlocal run
        if run is not None:
            direction, digest, count, reports = run
            out.append(
                Entry(
                    EVENT,
                    t_ns,
                    event={
                        "event": "data",
                        "dir": direction,
                        "bytes": count,
                        "reports": reports,
                        "sha256": digest.hexdigest(),
                    },
                )
            )
            run = None

    for entry in entries:
        if entry.kind == EVENT:
            if entry.event.get("event") == "add":  # reports in before the next out are the old stage's
                pending = entry.event.get("protocol") or protocol
            close_run(entry.t_ns)
            out.append(entry)
            continue
        inbound = entry.kind == IN
        if not inbound and pending is not None:
            protocol, pending = pending, None
        if not is_data_report(entry.data, inbound, protocol):
            close_run(entry.t_ns)
            out.append(entry)
            continue
        if run is not None and run[0] != entry.kind:
            close_run(entry.t_ns)
        payload = _payload(entry.data, protocol)
        if run is None:
            run = (entry.kind, hashlib.sha256(), 0, 0)
        run[1].update(payload)
        run = (run[0], run[1], run[2] + len(payload), run[3] + 1)
        header = entry.data[:4] if protocol == "mboot" else entry.data[:1]
        out.append(Entry(entry.kind, entry.t_ns, header, entry.length))
    if out:
        close_run(out[-1].t_ns)
    return out


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
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k != "event")
    return f"{kind} {rest}".strip()


def encode(meta: dict[str, Any], entries: list[Entry]) -> bytes:
    """The whole file, in memory."""
    return b"".join(encode_parts(meta, entries))


def encode_parts(meta: dict[str, Any], entries: list[Entry]) -> list[bytes]:
    """The file as the pieces it is made of, in order (written with one writev)."""
    summary = (
        f"gangd {meta.get('version')} trace: job {meta.get('job')} on port {meta.get('port')}"
        f" ({meta.get('label')}), board {meta.get('board') or '-'} serial {meta.get('serial') or '-'},"
        f" {meta.get('family')}: {meta.get('result')}"
        + (f" at {meta['step']}: {meta['reason']}" if meta.get("reason") else "")
    )
    parts = [
        pcapng.section_header(
            [summary, META_PREFIX + json.dumps(meta, sort_keys=True)], f"gangd {meta.get('version')}"
        ),
        pcapng.interface(pcapng.LINKTYPE_USB_LINUX_MMAPPED, f"usbmon{meta.get('bus', 0)}", "HID reports (usbmon)"),
        pcapng.interface(pcapng.LINKTYPE_USER0, "gangd", "gangd events: udev, steps, power cycles (JSON)"),
    ]
    devnum, busnum = 0, int(meta.get("bus", 0))
    for urb, entry in enumerate(entries, 1):
        if entry.kind == EVENT:
            if entry.event.get("event") == "add":
                devnum = devnum % 127 + 1  # a new address at every enumeration, as the kernel gives
            body = json.dumps(entry.event, sort_keys=True).encode()
            parts.append(pcapng.enhanced_packet(1, entry.t_ns, body, len(body), [describe_event(entry.event)]))
            continue
        inbound = entry.kind == IN
        # Reports are padded with zeros to their endpoint's report size (mcu-boot sends 1016-byte
        # reports for a 16-byte response): the padding is left out of the file, as a capture
        # with a short snap length would, and the reader puts it back. A hashed report is marked.
        if entry.hashed:
            header = pcapng.usbmon_header(urb, inbound, devnum, busnum, entry.t_ns, entry.length, len(entry.data))
            parts.append(
                pcapng.enhanced_packet(
                    0,
                    entry.t_ns,
                    header + entry.data,
                    64 + entry.length,
                    [HASHED_COMMENT],
                    flags=pcapng.FLAG_INBOUND if inbound else pcapng.FLAG_OUTBOUND,
                )
            )
        else:
            stored = entry.data.rstrip(b"\0")
            parts.extend(pcapng.report_packet(urb, inbound, devnum, busnum, entry.t_ns, entry.length, stored))
    return parts


def write(path: str, meta: dict[str, Any], entries: list[Entry]) -> int:
    """Write atomically (a reader never sees half a trace); returns the file's size."""
    parts = encode_parts(meta, entries)
    size = sum(map(len, parts))
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        while parts:
            done = os.writev(fd, parts[:1024])  # at most IOV_MAX pieces; it may write less than asked
            index = 0
            while index < len(parts) and done >= len(parts[index]):
                done -= len(parts[index])
                index += 1
            parts = parts[index:]
            if done:  # the tail of a piece written in part
                parts[0] = parts[0][done:]
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return size


def read(path: str) -> Trace:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror}") from None
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
}


def _event_problem(event: Any) -> str | None:
    """What is wrong with an event read from a file (None: nothing), before anyone uses it."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return "not an event object"
    for key, kind in _EVENT_FIELDS.get(event["event"], {}).items():
        if not isinstance(event.get(key), kind) or isinstance(event.get(key), bool):
            return f"{event['event']} event without a valid {key!r}"
    return None
