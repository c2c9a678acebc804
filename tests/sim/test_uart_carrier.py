"""The pty carrier keeps the MCU bootloader's UART conversation going when the pty drops a host ACK.

spsdk's SerialDevice flushes the port (tcflush) before each write and on close; on a pty that
flush drops the bytes the host wrote before it that the kernel has not yet handed to the board's
side (measured: 494 of 2000 one-byte writes lost when tcflush(TCOFLUSH) follows at once). The
ACK the host sends for a board's response is such a write when blhost sends its next frame right
after it (write-memory after its get-property, or the first data frame). Here the host plays that
loss exactly: it never sends those ACKs, and the board must still take the next frame.
"""

from __future__ import annotations

import os
import select
import struct
import time
import tty

import pytest
from spsdk.sdp.commands import ResponseValue

from gangd.sim import SimBoard
from gangd.sim.board import ROM
from gangd.sim.links import FRAME_START, FT_ACK, FT_CMD, FT_DATA, FT_PING, FT_PINGR, crc16_xmodem
from gangd.sim.uart import UartBoard

GET_PROPERTY, WRITE_MEMORY = 0x07, 0x04
GENERIC_RESPONSE, GET_PROPERTY_RESPONSE = 0xA0, 0xA7
ANSWER_WITHIN_S = 20  # a deadline on an answer that must come, so a lost frame fails instead of hanging


class Host:
    """The host's side of the framing on the pty slave, with the ACKs under the test's control."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, length: int) -> bytes:
        data = b""
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while len(data) < length:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                pytest.fail(f"the board did not answer: got {data.hex()} of {length} bytes")
            data += os.read(self.fd, length - len(data))
        return data

    def frame(self, frame_type: int, payload: bytes) -> None:
        header = struct.pack("<BBH", FRAME_START, frame_type, len(payload))
        os.write(self.fd, header + struct.pack("<H", crc16_xmodem(header + payload)) + payload)

    def expect_ack(self) -> None:
        assert self.read(2) == bytes([FRAME_START, FT_ACK])

    def ack(self) -> None:
        os.write(self.fd, bytes([FRAME_START, FT_ACK]))

    def ping(self) -> None:
        os.write(self.fd, bytes([FRAME_START, FT_PING]))
        assert self.read(2) == bytes([FRAME_START, FT_PINGR])
        self.read(8)

    def command(self, tag: int, *params: int) -> None:
        self.frame(FT_CMD, struct.pack(f"<4B{len(params)}I", tag, 0, 0, len(params), *params))
        self.expect_ack()

    def response(self) -> tuple[int, tuple[int, ...]]:
        """The board's next response frame: (response tag, its parameters), CRC checked; not ACKed."""
        start, frame_type, length, crc = struct.unpack("<BBHH", self.read(6))
        assert (start, frame_type) == (FRAME_START, FT_CMD)
        payload = self.read(length)
        assert crc == crc16_xmodem(struct.pack("<BBH", start, frame_type, length) + payload)
        tag, _, _, count = struct.unpack_from("<4B", payload)
        return tag, struct.unpack_from(f"<{count}I", payload, 4)


@pytest.fixture
def host_and_board(boards):
    board = SimBoard(boards(stage="flashloader"))
    with UartBoard(board) as uart:
        host = Host(uart.path)
        try:
            yield host, board
        finally:
            host.close()
        assert uart.error is None


def test_the_next_command_stands_for_an_ack_the_pty_dropped(host_and_board):
    host, board = host_and_board
    host.ping()
    host.command(GET_PROPERTY, 11, 0)  # blhost write-memory asks the max packet size first
    assert host.response() == (GET_PROPERTY_RESPONSE, (0, 512))
    # Its ACK is lost on the pty; the host, having read the whole response, sends its next command.
    host.command(GET_PROPERTY, 1, 0)
    tag, (status, version) = host.response()
    assert (tag, status) == (GET_PROPERTY_RESPONSE, 0) and version >> 24 == ord("K")
    host.ack()
    assert [r.command for r in board.commands()] == ["get-property", "get-property"]


def test_a_data_frame_stands_for_an_ack_the_pty_dropped(host_and_board):
    host, board = host_and_board
    data = bytes(range(256)) * 2
    host.ping()
    host.command(WRITE_MEMORY, 0x2000, len(data), 0)
    assert host.response() == (GENERIC_RESPONSE, (0, WRITE_MEMORY))
    # The ACK for "go ahead" is lost; the host's first data frame follows at once.
    host.frame(FT_DATA, data)
    host.expect_ack()
    assert host.response() == (GENERIC_RESPONSE, (0, WRITE_MEMORY))
    host.ack()
    assert board.ram.read(0x2000, len(data)) == data
    assert [(r.command, r.status) for r in board.commands()] == [("write-memory", 0)]


RESET = 0x0B
SDP_ERROR_STATUS = 0x0505


def test_a_closed_port_stands_for_the_ack_of_the_last_response(host_and_board):
    """blhost's close flushes the port too: the ACK for `reset` can die there. The board must still
    reset, or the next tool (sdphost, for the ROM) finds a flashloader waiting for an ACK."""
    host, board = host_and_board
    path = os.ttyname(host.fd)
    host.ping()
    host.command(RESET)
    assert host.response() == (GENERIC_RESPONSE, (0, RESET))
    host.close()  # without the ACK
    # Back in its ROM (what the board hears while it re-enumerates is lost, as on a real UART).
    assert board.wait_for_stage(ROM, ANSWER_WITHIN_S), "the board did not reset"
    host.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(host.fd)
    os.write(host.fd, struct.pack(">HIB2IB", SDP_ERROR_STATUS, 0, 0, 0, 0, 0))
    assert host.read(4) == struct.pack("<I", ResponseValue.UNLOCKED.tag)  # the ROM's HAB word
    host.read(4)  # and its error status
    assert [r.command for r in board.commands()][-2:] == ["reset", "error-status"]
