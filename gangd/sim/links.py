"""The board's side of the wire: HID reports over a socket, or UART bytes over a pseudo-terminal.

Each link offers the two protocol engines what they need and nothing more:
- the MCU bootloader (mboot) engine receives command and data packets and sends response and
  data packets (`MbootHidLink`, `MbootUartLink`);
- the ROM's serial download protocol (SDP) engine receives 16-byte commands and raw data and
  sends HAB, status and data replies (`SdpHidLink`, `SdpUartLink`).

Report layouts follow spsdk's host side (`mboot/protocol/bulk_protocol.py`,
`sdp/protocol/bulk_protocol.py`) and the UART framing its serial protocols (`serial_protocol.py`);
report sizes follow the stage's HID report descriptor (`hid_reports.py`). Every packet that crosses
the wire is charged one report interval to the board's clock.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import struct
import threading
import time

from spsdk.crypto.crc import CrcAlg, from_crc_algorithm

from gangd.sim.hid_reports import (
    CMD_IN,
    CMD_OUT,
    DATA_IN,
    DATA_OUT,
    FLASHLOADER_DESCRIPTOR,
    ROM_DESCRIPTOR,
    report_sizes,
)
from gangd.sim.loop import running_loop
from gangd.sim.timing import BoardClock

_MBOOT_SIZES = report_sizes(FLASHLOADER_DESCRIPTOR)
_SDP_SIZES = report_sizes(ROM_DESCRIPTOR)

# mboot over HID: [report id, 0, payload length (LE16), payload]
_MBOOT_HEADER = struct.Struct("<BBH")
MBOOT_CMD_OUT, MBOOT_DATA_OUT, MBOOT_CMD_IN, MBOOT_DATA_IN = CMD_OUT, DATA_OUT, CMD_IN, DATA_IN
# SDP over HID: CMD and DATA reports of 1024 bytes out, HAB (4 bytes) and RET (64 bytes) in.
SDP_CMD, SDP_DATA, SDP_HAB, SDP_RET = CMD_OUT, DATA_OUT, CMD_IN, DATA_IN
SDP_REPORT_DATA = _SDP_SIZES[("output", SDP_DATA)]
SDP_HAB_SIZE = _SDP_SIZES[("input", SDP_HAB)]
SDP_RET_SIZE = _SDP_SIZES[("input", SDP_RET)]
HID_REPORT_SIZE = 1024
# The RT10xx flashloader's HID endpoints carry 1016-byte reports (the report id and 1015 bytes): a
# 4-byte header and 1012 bytes of payload, which the MaxPacketSize property reports over USB
# (mcu-boot usb_descriptor.*, RT1021 `BL_EXPANDED_USB_HID_PACKET_SIZE 1012`; docs/FLASHLOADER.md "USB").
# The firmware sends every input report at that full length, padded with zeros.
MBOOT_IN_REPORT_SIZE = 1 + _MBOOT_SIZES[("input", MBOOT_CMD_IN)]
MBOOT_HID_PACKET_SIZE = MBOOT_IN_REPORT_SIZE - 4
MBOOT_UART_PACKET_SIZE = 512

# mboot UART framing
FRAME_START = 0x5A
FT_ACK, FT_NACK, FT_ABORT, FT_CMD, FT_DATA, FT_PING, FT_PINGR = 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7
# Protocol version reported in the ping response: 'P' 1.2.0, as MCU bootloaders answer.
PING_VERSION = (ord("P") << 24) | (1 << 16) | (2 << 8)

_POLL_S = 0.05  # how often a blocked read looks at the stop flag

# SO_TIMESTAMPNS (asm-generic/socket.h; Python's socket module does not name it): the kernel stamps
# each message with the time the host sent it (net/unix/af_unix.c, unix_dgram_sendmsg:
# __net_timestamp when the receiver asked for stamps), in CLOCK_REALTIME, handed over by recvmsg
# as a struct timespec under the same number (SCM_TIMESTAMPNS).
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class LinkClosed(Exception):
    """The host went away, the board was unplugged, or the board is leaving (jump, reset)."""


class PortClosed(Exception):
    """The pty's host side was closed: the process that had the port open let it go (pty only)."""


def crc16_xmodem(data: bytes) -> int:
    return from_crc_algorithm(CrcAlg.CRC16_XMODEM).calculate(data)


class _ByteChannel:
    """Blocking reads and writes on a file descriptor that give up when `stop` is set."""

    def __init__(self, fd: int, stop: threading.Event) -> None:
        self.fd = fd
        self.stop = stop

    def wait_readable(self) -> None:
        self._wait(selectors.EVENT_READ)

    def wait_writable(self) -> None:
        self._wait(selectors.EVENT_WRITE)

    def _wait(self, events: int) -> None:
        loop = running_loop()
        while not self.stop.is_set():
            if loop is not None:  # the board runs on a BoardLoop: park it there, woken by unplug
                if loop.block(self.fd, events, stop=self.stop):
                    return
                continue
            if _ready(self.fd, events, _POLL_S):
                return
        raise LinkClosed("board stopped")


def _ready(fd: int, events: int, timeout: float = 0.0) -> bool:
    if events == selectors.EVENT_READ:
        return bool(select.select([fd], [], [], timeout)[0])
    return bool(select.select([], [fd], [], timeout)[1])


class HidSocket(_ByteChannel):
    """One end of a SOCK_SEQPACKET socket: every message is one HID report.

    The report that ends a wait for the host is read with the time the host sent it (the socket's
    SO_TIMESTAMPNS stamp), and the board's clock counts from then: on a loop that serves every
    board, the simulator's thread may get to the report milliseconds later (1.2 ms on average, up
    to 6 ms, at 64 boards re-enumerating at once), and a real board, whose CPU is its own, would
    have answered that much sooner. Without the stamp (a socket that refuses the option), from
    when it is read, as before."""

    def __init__(self, sock: socket.socket, clock: BoardClock, stop: threading.Event) -> None:
        super().__init__(sock.fileno(), stop)
        self.sock = sock
        self.clock = clock
        # Bound once: these run once per report (a thousand times per MiB each way).
        self._recv, self._send, self._charge, self._owe = sock.recv, sock.send, clock.charge, clock.owe
        self._interval = clock.model.report_interval_s
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # no stamps: the reports come without them (class doc)

    def recv_report(self) -> bytes:
        if self.clock.idling:  # the first report after a wait for the host
            return self._recv_after_idle()
        try:
            report = self._recv(HID_REPORT_SIZE + 64, socket.MSG_DONTWAIT)  # usually there already
        except BlockingIOError:
            self.clock.idle()
            return self._recv_after_idle()
        except OSError as exc:
            raise LinkClosed(str(exc)) from exc
        if not report:
            raise LinkClosed("host closed the device")
        # Owed, not slept: the host's send returned when the socket queued the report, so the
        # board's pace shows only in its next reply, which `send_report` sends at the deadline.
        self._owe(self._interval)
        return report

    def _recv_after_idle(self) -> bytes:
        """The next report, waited for, owed from the time the host sent it (class doc)."""
        while True:
            try:
                report, ancillary, _, _ = self.sock.recvmsg(HID_REPORT_SIZE + 64, _STAMP_SPACE, socket.MSG_DONTWAIT)
                break
            except BlockingIOError:
                self.wait_readable()
            except OSError as exc:
                raise LinkClosed(str(exc)) from exc
        if not report:
            raise LinkClosed("host closed the device")
        arrived = None
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                arrived = seconds + nanoseconds / 1e9 - time.time() + time.monotonic()  # realtime to monotonic
        self._owe(self._interval, arrived)
        return report

    def send_report(self, report: bytes) -> None:
        self._charge(self._interval)
        while True:
            try:
                # Never blocks the thread: on a BoardLoop that thread carries every other board.
                self._send(report, socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                self.wait_writable()  # the host is not reading: its socket buffer is full
            except OSError as exc:
                raise LinkClosed(str(exc)) from exc


class MbootHidLink:
    packet_size = MBOOT_HID_PACKET_SIZE
    name = "usb-hid"

    def __init__(self, hid: HidSocket) -> None:
        self.hid = hid

    def recv(self) -> tuple[str, bytes]:
        """The next ("cmd" | "data", payload); malformed reports are dropped as firmware does."""
        while True:
            report = self.hid.recv_report()
            if len(report) < 4:
                continue
            report_id, _, length = struct.unpack_from("<BBH", report)
            payload = report[4 : 4 + length]
            if report_id == MBOOT_CMD_OUT:
                return "cmd", payload
            if report_id == MBOOT_DATA_OUT:
                return "data", payload

    def recv_data(self, want: int) -> tuple[bytes, bytes | None]:
        """Data payloads until at least `want` bytes, as `recv` would give them one by one; a
        command arriving instead ends the collection and comes back second (else None)."""
        data = bytearray()
        recv, unpack = self.hid.recv_report, _MBOOT_HEADER.unpack_from
        while len(data) < want:
            report = recv()
            if len(report) < 4:
                continue
            report_id, _, length = unpack(report)
            if report_id == MBOOT_DATA_OUT:
                data += report[4 : 4 + length]
            elif report_id == MBOOT_CMD_OUT:
                return bytes(data), report[4 : 4 + length]
        return bytes(data), None

    def send_response(self, payload: bytes) -> None:
        self.hid.send_report(_full_report(struct.pack("<BBH", MBOOT_CMD_IN, 0, len(payload)) + payload))

    def send_data(self, payload: bytes) -> None:
        self.hid.send_report(_full_report(struct.pack("<BBH", MBOOT_DATA_IN, 0, len(payload)) + payload))

    def send_data_stream(self, data: bytes) -> None:
        """A whole read data phase: one full-size DATA_IN report per packet, each charged its report
        interval by `send_report`, without a call chain per report."""
        size, view, send = self.packet_size, memoryview(data), self.hid.send_report
        full = struct.pack("<BBH", MBOOT_DATA_IN, 0, size)
        for offset in range(0, len(data) - size + 1, size):
            send(full + view[offset : offset + size])
        tail = len(data) % size
        if tail:
            self.send_data(bytes(view[len(data) - tail :]))


def _full_report(report: bytes) -> bytes:
    """mcu-boot's usb_hid_packet_write sends sizeof(bl_hid_report_t) whatever the payload: pad."""
    return report.ljust(MBOOT_IN_REPORT_SIZE, b"\0")


class SdpHidLink:
    name = "usb-hid"

    def __init__(self, hid: HidSocket) -> None:
        self.hid = hid

    def recv_command(self) -> bytes:
        while True:
            report = self.hid.recv_report()
            if report[:1] == bytes([SDP_CMD]) and len(report) >= 17:
                return report[1:17]

    def recv_data(self, length: int) -> bytes:
        data = bytearray()
        while len(data) < length:
            report = self.hid.recv_report()
            if report[:1] == bytes([SDP_DATA]):
                data += report[1 : 1 + SDP_REPORT_DATA]
        return bytes(data[:length])

    def send_hab(self, value: int) -> None:
        self.hid.send_report(bytes([SDP_HAB]) + struct.pack(">I", value).ljust(SDP_HAB_SIZE, b"\0"))

    def send_status(self, value: int) -> None:
        self.send_data(struct.pack(">I", value))

    def send_data(self, data: bytes) -> None:
        for offset in range(0, max(len(data), 1), SDP_RET_SIZE):
            chunk = data[offset : offset + SDP_RET_SIZE]
            self.hid.send_report(bytes([SDP_RET]) + chunk.ljust(SDP_RET_SIZE, b"\0"))


class UartChannel(_ByteChannel):
    """The master side of a pseudo-terminal; the host opens the slave path like a serial port."""

    def __init__(self, master_fd: int, clock: BoardClock, stop: threading.Event) -> None:
        super().__init__(master_fd, stop)
        self.clock = clock
        self._buffer = bytearray()
        self._host_present = False  # a host has written since the port was last seen closed

    def read_exact(self, length: int) -> bytes:
        """`length` bytes from the host; PortClosed once when the host closes the port."""
        while len(self._buffer) < length:
            if not select.select([self.fd], [], [], 0)[0]:
                self.clock.idle()  # nothing from the host yet: the board waits for it
                self.wait_readable()
            try:
                chunk = os.read(self.fd, 4096)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise LinkClosed(str(exc)) from exc
                # EIO: no process has the slave open (the board holds no descriptor of it), and
                # all the last host wrote has been read. The master reads EIO until a host opens.
                if self._host_present:
                    self._host_present = False
                    self._buffer.clear()  # a frame cut short: the next host starts afresh
                    raise PortClosed("the host closed the port") from None
                if self.stop.wait(_POLL_S):
                    raise LinkClosed("board stopped") from None
                continue
            if not chunk:
                raise LinkClosed("pty closed")
            self._host_present = True
            self._buffer += chunk
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        return data

    def write(self, data: bytes) -> None:
        self.clock.settle()  # whatever the board owes (pages programmed) comes before its answer
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], _POLL_S)
                continue
            except OSError as exc:
                raise LinkClosed(str(exc)) from exc
            view = view[written:]

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the input: the next read_exact returns them first."""
        self._buffer[:0] = data

    def discard_input(self) -> None:
        """Forget what the host sent while the board was away (re-enumerating)."""
        self._buffer.clear()
        while select.select([self.fd], [], [], 0)[0]:
            try:
                if not os.read(self.fd, 4096):
                    return
            except OSError:
                return


class MbootUartLink:
    """MCU bootloader UART framing: ping, ACK after every frame, CRC16-XMODEM."""

    packet_size = MBOOT_UART_PACKET_SIZE
    name = "uart"

    def __init__(self, uart: UartChannel) -> None:
        self.uart = uart

    def _send_raw_frame(self, frame_type: int, payload: bytes) -> None:
        header = struct.pack("<BBH", FRAME_START, frame_type, len(payload))
        crc = crc16_xmodem(header + payload)
        self.uart.write(header + struct.pack("<H", crc) + payload)

    def _answer_ping(self) -> None:
        body = struct.pack("<BBIH", FRAME_START, FT_PINGR, PING_VERSION, 0)
        self.uart.write(body + struct.pack("<H", crc16_xmodem(body)))

    def recv(self) -> tuple[str, bytes]:
        while True:
            try:
                return self._recv_frame()
            except PortClosed:
                continue  # whatever that host left half-sent is dropped; wait for the next one

    def _recv_frame(self) -> tuple[str, bytes]:
        while True:
            if self.uart.read_exact(1)[0] != FRAME_START:
                continue
            frame_type = self.uart.read_exact(1)[0]
            if frame_type == FT_PING:
                self._answer_ping()
                continue
            if frame_type not in (FT_CMD, FT_DATA):
                continue  # a stray ACK/NACK outside a handshake
            length, crc = struct.unpack("<HH", self.uart.read_exact(4))
            payload = self.uart.read_exact(length)
            if crc16_xmodem(struct.pack("<BBH", FRAME_START, frame_type, length) + payload) != crc:
                self.uart.write(bytes([FRAME_START, FT_NACK]))
                continue
            self.uart.write(bytes([FRAME_START, FT_ACK]))
            self.uart.clock.charge(self.uart.clock.model.report_interval_s)
            return ("cmd" if frame_type == FT_CMD else "data"), payload

    def _send_and_wait_ack(self, frame_type: int, payload: bytes) -> None:
        """Send a frame and wait for the host's ACK, as mcu-boot's serial_packet_write does
        (wait_for_ack_packet: ACK, or NAK and send again).

        Where the host's next frame arrives instead of the ACK, the ACK was sent and lost on the
        way, and the frame is kept for `recv`. The pty loses it, not the host: spsdk's SerialDevice
        flushes both directions (pyserial reset_input_buffer / reset_output_buffer, that is
        tcflush) before every write and on close, and tcflush(TCOFLUSH) on a pty slave drops what
        the host wrote that the kernel has not yet moved to our master (pty_flush_buffer frees the
        master's flip buffer; the move is done later by a workqueue, and tcdrain on a pty does not
        wait for it). On a busy machine the ACK for a response is caught so when blhost writes its
        next command at once (write-memory after its get-property) or a data frame: the board then
        took the command for garbage while waiting, and blhost timed out (10004). On a real UART,
        tcdrain returns once the bytes are on the wire, which no flush takes back. The host only
        writes its next frame after reading all of ours, so that frame proves ours arrived.
        (mcu-boot would take that frame's header for an error, kStatus_InvalidArgument: on a real
        UART the case does not arise. Taking it as the ACK is the simulator's choice, made for the
        pty.)

        pyserial's close flushes too, so the ACK for the last response of a blhost run can be
        lost the same way (1 in 59 loaded runs here): the board sees the port closed instead.
        The host closed it after our frame, whether it read it or gave up; either way the frame
        is over. Waiting on would keep the board from leaving after `reset` until another blhost
        pinged it (sdphost, which the ROM expects next, never does)."""
        self.uart.clock.charge(self.uart.clock.model.report_interval_s)
        self._send_raw_frame(frame_type, payload)
        while True:
            try:
                if self.uart.read_exact(1)[0] != FRAME_START:
                    continue
                answer = self.uart.read_exact(1)[0]
            except PortClosed:
                return
            if answer == FT_ACK:
                return
            if answer == FT_NACK:
                self._send_raw_frame(frame_type, payload)
            elif answer in (FT_CMD, FT_DATA):
                self.uart.unread(bytes([FRAME_START, answer]))
                return
            elif answer == FT_PING:
                # The host gave up on us and starts over; answer and let the engine carry on.
                self._answer_ping()
                return

    def send_response(self, payload: bytes) -> None:
        self._send_and_wait_ack(FT_CMD, payload)

    def send_data(self, payload: bytes) -> None:
        self._send_and_wait_ack(FT_DATA, payload)

    def send_data_stream(self, data: bytes) -> None:
        for offset in range(0, len(data), self.packet_size):
            self.send_data(data[offset : offset + self.packet_size])


class SdpUartLink:
    """SDP over UART: 16-byte commands, raw data, 4-byte HAB and status words, no framing."""

    name = "uart"

    def __init__(self, uart: UartChannel) -> None:
        self.uart = uart

    def recv_command(self) -> bytes:
        while True:
            try:
                command = self.uart.read_exact(16)
                break
            except PortClosed:
                continue  # a command cut short by the host's close; the next host starts afresh
        self.uart.clock.charge(self.uart.clock.model.report_interval_s)
        return command

    def recv_data(self, length: int) -> bytes:
        data = self.uart.read_exact(length)
        self.uart.clock.charge(self.uart.clock.model.transfer_s(length, SDP_REPORT_DATA))
        return data

    def send_hab(self, value: int) -> None:
        self.uart.write(struct.pack(">I", value))

    def send_status(self, value: int) -> None:
        self.uart.write(struct.pack(">I", value))

    def send_data(self, data: bytes) -> None:
        self.uart.clock.charge(self.uart.clock.model.transfer_s(len(data), SDP_RET_SIZE))
        self.uart.write(data)
