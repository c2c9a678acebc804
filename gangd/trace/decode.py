"""A trace's conversation in words: each report decoded with spsdk's own command and response
classes (mboot: `CmdHeader`, `CmdPacket`, `parse_cmd_response`; SDP: `CmdPacket`, `CmdResponse`),
data phases folded into one line each, and gangd's events (udev, steps, power cycles, clock
fallbacks) between them. Used by `gangd trace show` (gangd/cli/trace.py).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from spsdk.mboot.commands import CmdHeader, CmdPacket, CommandTag, parse_cmd_response
from spsdk.mboot.error_codes import stringify_status_code
from spsdk.sdp.commands import CmdPacket as SdpCmdPacket
from spsdk.sdp.commands import CmdResponse as SdpCmdResponse
from spsdk.sdp.commands import CommandTag as SdpCommandTag

from gangd.trace import diverged_at, divergence_reason
from gangd.trace import file as tf

MBOOT_CMD_OUT, MBOOT_DATA_OUT, MBOOT_CMD_IN, MBOOT_DATA_IN = 1, 2, 3, 4
SDP_CMD, SDP_DATA, SDP_HAB, SDP_RET = 1, 2, 3, 4


@dataclass
class Line:
    t: float  # seconds since the trace's first entry
    report: int | None  # the first report's number (1-based), None for events
    kind: str  # command | response | data | event
    direction: str | None  # out | in
    text: str
    status: int | None = None
    fields: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def kebab(label: str) -> str:
    """spsdk's command label as blhost spells it (FlashEraseRegion -> flash-erase-region)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", label).lower()


def lines(trace: tf.Trace) -> Iterator[Line]:
    entries = trace.entries
    if not entries:
        return
    t0 = entries[0].t_ns
    protocol = "mboot"
    pending: str | None = None
    run: Line | None = None  # the data phase being folded
    number = 0
    for entry in entries:
        t = (entry.t_ns - t0) / 1e9
        if entry.kind == tf.EVENT:
            event = entry.event
            if event.get("event") == "data" and run is not None:
                run.text += f", sha256 {event['sha256']} of {event['bytes']} bytes"
                continue
            if run is not None:
                yield run
                run = None
            if event.get("event") == "add":
                # Reports in before the host's first report out to the new stage were sent by
                # the previous one (read after its remove): switch at that first report out.
                pending = event.get("protocol") or protocol
            yield Line(t, None, "event", None, tf.describe_event(event), fields=event)
            continue
        number += 1
        inbound = entry.kind == tf.IN
        if not inbound and pending is not None:
            protocol, pending = pending, None
        if tf.is_data_report(entry.data, inbound, protocol):
            size = _data_size(entry, protocol)
            if run is not None and run.direction == entry.kind:
                assert run.fields is not None
                run.fields["bytes"] += size
                run.fields["reports"] += 1
                run.text = f"data {entry.kind}: {run.fields['bytes']} bytes in {run.fields['reports']} reports"
                continue
            if run is not None:
                yield run
            run = Line(t, number, "data", entry.kind, f"data {entry.kind}: {size} bytes in 1 reports")
            run.fields = {"bytes": size, "reports": 1}
            continue
        if run is not None:
            yield run
            run = None
        yield (_sdp if protocol == "sdp" else _mboot)(entry, t, number)
    if run is not None:
        yield run


def _data_size(entry: tf.Entry, protocol: str) -> int:
    if protocol == "mboot" and len(entry.data) >= 4:
        return struct.unpack_from("<H", entry.data, 2)[0]
    return entry.length - 1


def _mboot(entry: tf.Entry, t: float, number: int) -> Line:
    data = entry.data
    if len(data) < 4:
        return Line(t, number, "report", entry.kind, f"short report ({len(data)} bytes): {data.hex()}")
    report_id, _, length = struct.unpack_from("<BBH", data)
    payload = data[4 : 4 + length]
    try:
        if report_id == MBOOT_CMD_OUT:
            header = CmdHeader.parse(payload)
            params = struct.unpack_from(f"<{header.params_count}I", payload, 4)
            tag = CommandTag.from_tag(header.tag)
            packet = CmdPacket(tag, header.flags, *params)
            name = kebab(CommandTag.get_label(header.tag))
            args = " ".join(f"0x{p:x}" if p > 9 else str(p) for p in packet.params)
            return Line(t, number, "command", "out", f"{name} {args}".rstrip(), fields={"spsdk": str(packet)})
        if report_id == MBOOT_CMD_IN:
            response = parse_cmd_response(payload)
            status = response.status
            what = stringify_status_code(status)
            if (report := diverged_at(status)) is not None:
                what = divergence_reason(report)
            text = f"{response.header.tag:#04x} {what}"
            label = type(response).__name__
            cmd_tag = getattr(response, "cmd_tag", None)
            if cmd_tag is not None and cmd_tag in CommandTag.tags():
                label = kebab(CommandTag.get_label(cmd_tag))
            values = getattr(response, "values", None)
            extra = f" values {', '.join(f'0x{v:x}' for v in values)}" if values else ""
            text = f"{label}: {what}{extra}"
            return Line(t, number, "response", "in", text, status, {"spsdk": str(response)})
    except Exception as exc:  # a hostile or damaged report is shown, never a traceback
        return Line(t, number, "report", entry.kind, f"undecodable report id {report_id}: {exc}: {data[:16].hex()}")
    return Line(t, number, "report", entry.kind, f"report id {report_id}, {length} bytes: {payload[:16].hex()}")


def _sdp(entry: tf.Entry, t: float, number: int) -> Line:
    data = entry.data
    report_id = data[0] if data else -1
    try:
        if entry.kind == tf.OUT and report_id == SDP_CMD and len(data) >= 17:
            tag, address, pformat, count, value, _ = struct.unpack_from(SdpCmdPacket.FORMAT, data, 1)
            packet = SdpCmdPacket(SdpCommandTag.from_tag(tag), address, pformat, count, value)
            name = kebab(SdpCommandTag.get_label(tag))
            text = f"{name} 0x{address:08x} format {pformat} count {count} value 0x{value:08x}"
            return Line(t, number, "command", "out", text, fields={"spsdk": str(packet)})
        if entry.kind == tf.IN and report_id in (SDP_HAB, SDP_RET) and len(data) >= 5:
            response = SdpCmdResponse(report_id == SDP_HAB, data[1:])
            kind = "HAB" if response.hab else "status"
            status = response.value
            what = str(response)
            if (report := diverged_at(status)) is not None:
                what = divergence_reason(report)
            return Line(t, number, "response", "in", f"{kind} {what}", status, {"spsdk": str(response)})
    except Exception as exc:  # a hostile or damaged report is shown, never a traceback
        return Line(t, number, "report", entry.kind, f"undecodable SDP report: {exc}: {data[:16].hex()}")
    return Line(t, number, "report", entry.kind, f"report id {report_id}, {len(data)} bytes: {data[:16].hex()}")


def header(trace: tf.Trace) -> str:
    m = trace.meta
    line = (
        f"{trace.path}: gangd {m.get('version')} job {m.get('job')} port {m.get('port')} ({m.get('label')}), "
        f"{m.get('family')}, board {m.get('board') or '-'} serial {m.get('serial') or '-'}: {m.get('result')}"
    )
    if m.get("reason"):
        line += f" at {m.get('step')}: {m.get('reason')}"
    if m.get("marginal"):
        line += f" (marginal board: flash read at {m.get('flash_mhz')} MHz)"
    if m.get("payload") == "hash":
        line += " [payload hashed]"
    return line
