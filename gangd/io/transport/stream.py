"""The data phases of write-memory and read-memory, streamed report by report on spsdk's framing.

spsdk stays the client for every command and status: the command is spsdk's `CmdPacket`, sent
and its response parsed and judged by `McuBoot._process_cmd`; the closing status report is parsed
by spsdk's `parse_cmd_response` (through `MbootHidProtocol.read`) and a refusal raised as spsdk's
own `McuBootCommandError`. What is ours is only the loop over the data reports in between, framed
with spsdk's bulk layout (`MbootBulkProtocol._create_frame`: report id `ReportId.DATA_OUT` /
`DATA_IN`, a zero byte, the payload length as LE16, the payload).

Why not spsdk's own loop (`McuBoot._send_data` / `_read_data`): profiled at 8 boards x 1 MiB it
was about a fifth of gangd's CPU (docs/PERFORMANCE.md). `_read_data` joins the payloads with
`data += packet`, copying the whole read so far for every report (quadratic: a 1 MiB read copies
about 0.5 GB); `_split_data` copies the image into a list of chunks first; each report passes
through three more calls and an isinstance ladder. Here each report is one header packed into a
reused buffer and one system call, the read lands in one preallocated buffer, and progress is
reported at most every `PROGRESS_INTERVAL_S` (never per report).

The loops run where the caller runs: on trio's thread for a socket node (a cooperative handle,
fd_device.py), in the port's worker thread for hidraw; no thread hop per report either way. On
trio's thread a loop lets the other jobs run once per group of reports (`FdHidDevice.pause`), as
a data phase whose reports never wait would otherwise keep them waiting to its end.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from spsdk.mboot.commands import CmdPacket, CommandFlag, CommandTag, GenericResponse
from spsdk.mboot.error_codes import StatusCode
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError
from spsdk.mboot.mcuboot import McuBoot, _clamp_down_memory_id
from spsdk.mboot.protocol.bulk_protocol import ReportId

from gangd.io.transport import MbootHidProtocol
from gangd.io.transport.fd_device import FdHidDevice

# spsdk's bulk frame header (MbootBulkProtocol._create_frame / _parse_frame): "<2BH".
FRAME_HEADER = struct.Struct("<2BH")
# A data phase tells its progress at most this often (~20 times a second per board).
PROGRESS_INTERVAL_S = 0.05
# How many bytes a read data phase takes in between two looks at the progress throttle (its clock
# is not read per report).
PROGRESS_CHECK_BYTES = 32 * 1024
# How many reports go out between two looks for an early answer from the device (a refusal that
# ends the data phase before its end): one poll(0) per 32 reports, not one read per report as
# spsdk's `allow_abort` does.
ANSWER_CHECK_EVERY = 32
# Room for one input report: the RT10xx flashloader's are 1016 bytes (docs/FLASHLOADER.md "USB").
REPORT_BUFFER = 1024 + 64

Progress = Callable[[int, int], None]


class Throttle:
    """Calls `progress(done, total)` at most once per `PROGRESS_INTERVAL_S`, plus once at the end."""

    __slots__ = ("_next", "progress", "total")

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total = progress, total
        self._next = time.monotonic() + PROGRESS_INTERVAL_S

    def __call__(self, done: int) -> None:
        if self.progress is not None and time.monotonic() >= self._next:
            self._next = time.monotonic() + PROGRESS_INTERVAL_S
            self.progress(done, self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)


def streamable(mboot: McuBoot) -> FdHidDevice | None:
    """The board's handle when `mboot` speaks HID reports over gangd's own device, else None
    (then spsdk's own loop is used)."""
    interface = mboot._interface
    if isinstance(interface, MbootHidProtocol) and isinstance(interface.device, FdHidDevice):
        return interface.device
    return None


def write_memory(
    mboot: McuBoot, address: int, data: bytes | memoryview, mem_id: int = 0, progress: Progress | None = None
) -> None:
    """spsdk's `write_memory`, its data phase streamed; raises McuBootCommandError on a refusal."""
    device = streamable(mboot)
    if device is None:
        mboot.write_memory(address, bytes(data), mem_id, progress)
        return
    size = mboot._get_max_packet_size()  # spsdk asks MaxPacketSize once per client and caches it
    packet = CmdPacket(
        CommandTag.WRITE_MEMORY, CommandFlag.HAS_DATA_PHASE.tag, address, len(data), _clamp_down_memory_id(mem_id)
    )
    mboot._process_cmd(packet)  # refused before the data phase: spsdk raises
    throttle = Throttle(progress, len(data))
    view, end = memoryview(data), len(data)
    # One frame buffer, its header packed once for the full reports; only the payload changes.
    tag, write = ReportId.DATA_OUT.tag, device.write_report
    frame = bytearray(FRAME_HEADER.size + size)
    FRAME_HEADER.pack_into(frame, 0, tag, 0, size)
    sent, taken = 0, True
    while taken and sent < end:
        # Groups of ANSWER_CHECK_EVERY reports: one look for an early answer before each group
        # after the first, and the progress throttle after each group (never per report).
        if sent:
            device.pause()
            if device.answer_waiting():
                break  # the device ended the data phase early: its status report is next
        group_end = min(end, sent + size * ANSWER_CHECK_EVERY)
        full_end = group_end - (group_end - sent) % size  # only the image's last report is shorter
        for offset in range(sent, full_end, size):
            frame[FRAME_HEADER.size :] = view[offset : offset + size]
            if not write(frame):
                sent, taken = offset, False
                break
        else:
            sent = full_end
            if full_end < group_end:
                taken = write(FRAME_HEADER.pack(tag, 0, group_end - full_end) + view[full_end:group_end])
                sent = group_end if taken else full_end
        throttle(sent)
    _closing_status(mboot, CommandTag.WRITE_MEMORY)
    if sent < len(data):  # an early answer that is not a refusal: the data phase did not happen
        raise McuBootConnectionError(f"write-memory: the device answered after {sent} of {len(data)} bytes")
    throttle.finish()


def read_memory(
    mboot: McuBoot, address: int, length: int, mem_id: int = 0, progress: Progress | None = None
) -> bytes | bytearray:
    """spsdk's `read_memory`, its data phase streamed; raises McuBootCommandError on a refusal.
    The data comes back in the buffer it was read into (a bytearray): a copy into bytes cost as
    much again as the read's own copies (a page-faulted allocation of the whole length)."""
    whole: list[bytearray] = []  # one window: the buffer the data was read into, not a copy of it
    read_windows(mboot, address, length, lambda _offset, data: whole.append(data), mem_id, progress, window=None)
    return whole[0] if whole else b""


# What a read handed over piece by piece holds at once: a board's read-back of a 32 MiB image was
# 32 MiB of gangd's memory per board verifying at the same time (2 GiB on 64 boards).
WINDOW = 1024 * 1024


def read_windows(
    mboot: McuBoot,
    address: int,
    length: int,
    take: Callable[[int, bytearray], None],
    mem_id: int = 0,
    progress: Progress | None = None,
    window: int | None = WINDOW,
) -> int:
    """One read-memory command, its data handed to `take(offset, data)` in consecutive windows of
    `window` bytes (None: one window of the whole length); the same command and reports on the
    wire as `read_memory`. The window's buffer is reused: `take` looks at it and keeps nothing.
    Returns the bytes the device sent (fewer than asked: it said so)."""
    device = streamable(mboot)
    if device is None:
        data = mboot.read_memory(address, length, mem_id, progress) or b""
        take(0, bytearray(data))
        return len(data)
    packet = CmdPacket(CommandTag.READ_MEMORY, CommandFlag.NONE.tag, address, length, _clamp_down_memory_id(mem_id))
    response = mboot._process_cmd(packet)
    total = min(length, getattr(response, "length", length))
    throttle = Throttle(progress, total)
    size = total if window is None else max(REPORT_BUFFER, min(window, total))
    out = bytearray(size)
    base = 0  # the offset of out[0] in the read
    buffer = bytearray(REPORT_BUFFER)
    view, out_view = memoryview(buffer), memoryview(out)
    data_in = ReportId.DATA_IN.tag
    read = device.read_report_into
    # A report with the very header and length of the last data report taken is a data report
    # carrying as much: it is not parsed again (the flashloader sends every packet but the last
    # one full: one parse per data phase, not one per report).
    header, header_count, payload, piece = b"", 0, 0, view[:0]
    told_at = received = 0
    while received < total:
        count = read(buffer)
        if count != header_count or not buffer.startswith(header):
            report_id, _, payload = FRAME_HEADER.unpack_from(buffer) if count >= 4 else (0, 0, 0)
            if report_id != data_in or payload == 0 or payload > count - 4:
                # Not a data report: spsdk's parser judges it (a status ending the phase early, an
                # abort, a malformed report) exactly as in its own loop.
                answer = MbootHidProtocol._parse_frame(bytes(view[:count]))
                if isinstance(answer, GenericResponse):
                    _judge(mboot, CommandTag.READ_MEMORY, answer)
                    raise McuBootCommandError(CommandTag.READ_MEMORY.label, StatusCode.FAIL.tag)
                raise McuBootConnectionError(f"unexpected report in a read data phase: {bytes(view[:16]).hex()}")
            header, header_count, piece = bytes(view[:4]), count, view[4 : 4 + payload]
        # More than was asked for: the rest is dropped, as spsdk's loop cuts it. A report that
        # straddles the window's end fills it, the window is handed over whole and reused.
        end, at = received + min(payload, total - received), 0
        while received < end:
            count = min(size - (received - base), end - received)
            out_view[received - base : received - base + count] = piece[at : at + count]
            received, at = received + count, at + count
            if received - base == size and received < total:
                take(base, out)
                base = received
        if received - told_at >= PROGRESS_CHECK_BYTES:  # the throttle is looked at per 32 KiB
            told_at = received
            throttle(received)
            device.pause()
    _closing_status(mboot, CommandTag.READ_MEMORY)
    throttle.finish()
    if received > base or total == 0:
        take(base, out if received - base == size else out[: received - base])
    return received


def _closing_status(mboot: McuBoot, tag: CommandTag) -> None:
    """The generic response that closes a data phase, read and parsed by spsdk."""
    answer = mboot._interface.read()
    if not isinstance(answer, GenericResponse):
        raise McuBootConnectionError(f"expected the status of {tag.label}, got {answer!r}")
    _judge(mboot, tag, answer)


def _judge(mboot: McuBoot, tag: CommandTag, answer: GenericResponse) -> None:
    mboot._status_code = answer.status
    if answer.status != StatusCode.SUCCESS:
        raise McuBootCommandError(tag.label, answer.status)
