"""Hostile input, property-based: malformed replies from a board end that board's job with a clear
error, never a crash, never another port's trouble."""

from __future__ import annotations

import socket
import threading

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spsdk.exceptions import SPSDKError

from gangd.io.transport import FdHidDevice, MbootHidProtocol, SdpHidProtocol, mboot_client
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.board import SimBoard
from gangd.sim.faults import MALFORMED_SHAPES
from gangd.sim.source import SimHubSource
from gangd.station.station import Station

from ..support import until

REPORT = st.binary(min_size=0, max_size=1100)


@settings(max_examples=1000, deadline=None)
@given(REPORT)
def test_any_report_parses_or_raises_an_spsdk_error(raw):
    for parse in (MbootHidProtocol._parse_frame, SdpHidProtocol._decode_report):
        try:
            parse(raw)
        except SPSDKError:
            pass


def header_report(report_id: int, length: int, payload: bytes) -> bytes:
    return bytes([report_id, 0]) + length.to_bytes(2, "little") + payload


LYING_REPORTS = st.one_of(
    REPORT,  # anything at all
    st.builds(header_report, st.sampled_from([0x03, 0x04, 0x07, 0x00]), st.integers(0, 0xFFFF), st.binary(max_size=40)),
    st.builds(
        lambda status, tag: header_report(
            0x03, 12, bytes([0xA0, 0, 0, 2]) + status.to_bytes(4, "little") + tag.to_bytes(4, "little")
        ),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 255),
    ),  # any status, any command tag
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(LYING_REPORTS, min_size=0, max_size=4), st.sampled_from(["get-property", "read-memory", "write-memory"])
)
def test_a_lying_board_gives_spsdk_errors_not_crashes(replies, command):
    """A fake board answers one command with generated reports, then goes silent.

    What may escape: spsdk's errors, and the AssertionError spsdk's McuBoot raises itself when a
    well-formed reply has the wrong shape for the command (mcuboot.py asserts the response class);
    the job layer turns both into a failed step (test_a_malformed_board_fails_alone).
    """
    host, board = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def fake_board():
        try:
            board.recv(2048)  # the command
            for reply in replies:
                board.send(reply)
            board.settimeout(2)
            while board.recv(2048):  # swallow any data phase
                pass
        except OSError:
            pass

    thread = threading.Thread(target=fake_board, daemon=True)
    thread.start()
    path_sock = host
    device = FdHidDevice("socketpair", timeout=300)
    device._sock, device._fd = path_sock, path_sock.fileno()  # an already-open handle
    path_sock.setblocking(False)
    mboot = mboot_client(device)
    mboot.max_packet_size = 1020  # skip the get-property spsdk would send first
    try:
        if command == "get-property":
            mboot.get_property(1)
        elif command == "read-memory":
            mboot.read_memory(0x2000_0000, 3000)
        else:
            mboot.write_memory(0x2000_0000, bytes(2100))
    except (SPSDKError, AssertionError):
        pass
    finally:
        device.dispose()
        board.close()
        thread.join(5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(MALFORMED_SHAPES),
    st.sampled_from(["get-property", "configure-memory", "flash-erase-region", "write-memory", "read-memory", "reset"]),
)
def test_a_malformed_board_fails_alone(rt1020, recipe, shape, command):
    spec = f"malformed:cmd={command},shape={shape}"

    async def run():
        with SimHub(["1-1.1", "1-1.2"]) as hub:
            factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=9)
            bad = factory()
            bad.faults = (spec,)
            board = SimBoard(bad)
            board.flash.program(0, b"\x00" * 4096)  # an old image: the job erases, so each command is sent
            hub.plug("1-1.1", board)
            hub.plug("1-1.2", factory())
            station = Station(rt1020, recipe, {"1-1.1": "BAD", "1-1.2": "OK"})
            async with trio.open_nursery() as nursery:
                await nursery.start(station.run, SimHubSource(hub).run)
                await until(station.changes, lambda: len(station.results) >= 2, "both ports' results", timeout=60)
                nursery.cancel_scope.cancel()
            assert not hub.errors
            return {r.port: r for r in station.results}, board.own_faults.fired_counts()[spec]

    results, fired = trio.run(run)
    assert fired >= 1, f"{spec} never fired: the test proved nothing"
    assert results["1-1.2"].result == "success"  # the other port goes on
    hostile = results["1-1.1"]
    if hostile.result != "success":  # a reset's reply is not needed, and "unknown-status" on some commands recovers
        assert hostile.result == "failed" and hostile.step and hostile.reason, hostile
    # every failed step the board caused is in the attempts, each with a reason in words
    assert all(a.error for a in hostile.attempts)
