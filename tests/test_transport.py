"""gangd's fd transport: report boundaries, poll deadlines, abort from another thread, gone devices."""

from __future__ import annotations

import os
import socket
import threading
import time

import greenback
import pytest
import trio
import trio.testing
from spsdk.utils.exceptions import SPSDKTimeoutError

from gangd.io.transport import DeviceGoneError, FdHidDevice, TransportAborted


@pytest.fixture
def node(tmp_path):
    """A listening seqpacket socket standing in for a device node; yields (path, accept)."""
    path = str(tmp_path / "hidraw9")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    yield path, listener
    listener.close()


def test_reports_keep_their_boundaries(node):
    path, listener = node
    device = FdHidDevice(path)
    device.open()
    peer, _ = listener.accept()
    peer.send(b"\x03" + b"a" * 10)
    peer.send(b"\x04" + b"b" * 20)
    assert device.read(1024) == b"\x03" + b"a" * 10
    assert device.read(1024) == b"\x04" + b"b" * 20
    device.write(b"\x01xyz")
    assert peer.recv(1024) == b"\x01xyz"
    device.dispose()


def test_read_times_out_on_its_deadline(node):
    path, listener = node
    device = FdHidDevice(path, timeout=5000)
    device.open()
    started = time.monotonic()
    with pytest.raises(SPSDKTimeoutError):
        device.read(1024, timeout=100)
    assert 0.09 <= time.monotonic() - started < 1.0
    device.dispose()


def test_abort_wakes_a_blocked_read_at_once(node):
    path, listener = node
    device = FdHidDevice(path, timeout=60_000)
    device.open()
    outcome = []

    def blocked():
        try:
            device.read(1024)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    device.abort()
    thread.join(2)
    assert not thread.is_alive() and time.monotonic() - started < 0.5
    assert isinstance(outcome[0], TransportAborted)
    with pytest.raises(TransportAborted):
        device.write(b"\x01")
    device.dispose()


def test_peer_gone_is_a_disconnect_not_a_timeout(node):
    path, listener = node
    device = FdHidDevice(path)
    device.open()
    peer, _ = listener.accept()
    peer.close()
    with pytest.raises(DeviceGoneError):
        device.read(1024, timeout=1000)
    device.dispose()


def test_missing_node_is_gone(tmp_path):
    with pytest.raises(DeviceGoneError):
        FdHidDevice(str(tmp_path / "hidraw404")).open()


def test_character_device_path_opens_with_os_open(tmp_path):
    """Not a socket: opened with os.open, as /dev/hidrawN is (a FIFO stands in here)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    device = FdHidDevice(str(fifo))
    device.open()
    device.write(b"\x01report")
    assert os.read(keep, 100) == b"\x01report"
    device.dispose()
    os.close(keep)


def test_a_write_data_phase_stops_when_the_device_refuses_midway(node):
    """A flashloader that refuses in the middle of a data phase answers at once and stops taking
    reports (mcu-boot finalize_data_phase); the stream sees the answer, stops sending and raises
    spsdk's own command error with the device's status, instead of pushing the rest of the image."""
    import struct

    from spsdk.mboot.exceptions import McuBootCommandError

    from gangd.io.transport import mboot_client
    from gangd.io.transport.stream import write_memory

    path, listener = node
    device = FdHidDevice(path, timeout=2000)
    mboot = mboot_client(device)
    mboot.open()
    mboot.max_packet_size = 1012  # as the board's MaxPacketSize property says (asked once, cached)
    peer, _ = listener.accept()

    def generic(status: int) -> bytes:
        payload = struct.pack("<4B2I", 0xA0, 0, 0, 2, status, 0x04)  # GenericResponse to write-memory
        return struct.pack("<2BH", 0x03, 0, len(payload)) + payload

    def flashloader() -> None:
        assert peer.recv(1100)[0] == 0x01  # the command
        peer.send(generic(0))
        for _ in range(3):
            assert peer.recv(1100)[0] == 0x02  # data
        peer.send(generic(10203))  # an unerased page: refused, and no more data is taken

    thread = threading.Thread(target=flashloader)
    thread.start()
    image = bytes(1024 * 1024)
    with pytest.raises(McuBootCommandError) as refused:
        write_memory(mboot, 0x6000_0000, image)
    thread.join()
    assert refused.value.error_value == 10203
    peer.setblocking(False)
    sent = 3
    while True:
        try:
            peer.recv(1100)
        except BlockingIOError:
            break
        sent += 1
    assert sent < len(image) // 1012 // 4  # stopped early, not after the whole image
    device.dispose()
    peer.close()


def _read_phase(listener, path, reports: list[bytes], length: int, read=None):
    """stream.read_memory (or `read(mboot, address, length)`) against a flashloader that answers
    read-memory with `reports`."""
    import struct

    from gangd.io.transport import mboot_client
    from gangd.io.transport.stream import read_memory

    device = FdHidDevice(path, timeout=2000)
    mboot = mboot_client(device)
    mboot.open()
    peer, _ = listener.accept()

    def response(payload: bytes) -> bytes:
        return struct.pack("<2BH", 0x03, 0, len(payload)) + payload

    def flashloader() -> None:
        assert peer.recv(1100)[0] == 0x01  # the command
        peer.send(response(struct.pack("<4B2I", 0xA3, 1, 0, 2, 0, length)))  # ReadMemory: data follows
        for report in reports:
            peer.send(report)
        peer.send(response(struct.pack("<4B2I", 0xA0, 0, 0, 2, 0, 0x03)))  # the closing status

    thread = threading.Thread(target=flashloader)
    thread.start()
    try:
        return (read or read_memory)(mboot, 0x6000_0000, length)
    finally:
        thread.join()
        device.dispose()
        peer.close()


def _data(payload: bytes, pad_to: int = 1016) -> bytes:
    import struct

    return (struct.pack("<2BH", 0x04, 0, len(payload)) + payload).ljust(pad_to, b"\0")


def test_a_read_data_phase_takes_each_report_for_what_its_header_says(node):
    """Full reports, a shorter one between them, full ones again: each report's header decides
    how much of it is data, even where the stream skips parsing a header it has just seen."""
    path, listener = node
    pieces = [bytes([n]) * 1012 for n in range(3)] + [b"\x07" * 100] + [bytes([n]) * 1012 for n in range(8, 10)]
    data = b"".join(pieces)
    assert _read_phase(listener, path, [_data(p) for p in pieces], len(data)) == data


def test_a_read_handed_over_in_windows_is_the_same_data_and_the_same_reports(node):
    """read_windows: the data of one read-memory in consecutive windows of at most the window's
    size (a report straddling a window's end starts the next), the whole of it, in order."""
    from gangd.io.transport.stream import read_windows

    path, listener = node
    pieces = [bytes([n]) * 1012 for n in range(5)] + [b"\x07" * 100] + [bytes([n]) * 1012 for n in range(8, 12)]
    data = b"".join(pieces)
    windows: list[tuple[int, bytes]] = []

    def read(mboot, address, length):
        return read_windows(mboot, address, length, lambda at, window: windows.append((at, bytes(window))), window=2048)

    assert _read_phase(listener, path, [_data(p) for p in pieces], len(data), read) == len(data)
    assert b"".join(w for _, w in windows) == data
    assert [at for at, _ in windows] == [sum(len(w) for _, w in windows[:n]) for n in range(len(windows))]
    assert len(windows) > 2 and all(len(w) <= 2048 for _, w in windows)


def test_verify_compares_window_by_window_and_names_the_first_difference(node):
    """A read-back of three windows (1 MiB each) and a piece: a byte that differs in the third is
    named at its own address, and nothing the size of the image is held for the comparison."""
    import tracemalloc

    from gangd.config.recipe import Image
    from gangd.engine.board_ops import VerifyMismatch, verify

    path, listener = node
    image = bytes(range(256)) * (12 * 1024 + 100)  # 3 MiB and a bit: three windows and a piece
    back = bytearray(image)
    back[2_500_000] ^= 0x10
    reports = [_data(bytes(back[at : at + 1012])) for at in range(0, len(back), 1012)]
    tracemalloc.start()
    try:
        with pytest.raises(VerifyMismatch, match=f"at 0x{0x6000_0000 + 2_500_000:08x}"):
            _read_phase(listener, path, reports, len(image), lambda m, a, n: verify(m, Image(a, image)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(image) // 2, peak  # one window at a time, not a read-back of the image's size


def test_a_report_shaped_like_the_data_but_of_another_id_is_not_data(node):
    """A report of the data reports' very length whose id is not DATA_IN ends the phase with an
    error: it is parsed, never copied in as data."""
    from spsdk.mboot.exceptions import McuBootConnectionError

    path, listener = node
    odd = bytearray(_data(b"\x05" * 1012))
    odd[0] = 0x07
    with pytest.raises(McuBootConnectionError):
        _read_phase(listener, path, [_data(b"\x01" * 1012), _data(b"\x02" * 1012), bytes(odd)], 3 * 1012)


def test_spsdk_command_logging_is_built_only_when_enabled(node, monkeypatch):
    """gangd's McuBoot is spsdk's: the command's TRACE lines are there when TRACE is on, and the
    str() of every packet spsdk formatted in advance is not built when nothing is logged."""
    import logging

    from spsdk.mboot.commands import CmdPacket

    built: list[str] = []
    to_text = CmdPacket.__str__
    monkeypatch.setattr(CmdPacket, "__str__", lambda self: built.append("packet") or to_text(self))
    path, listener = node
    spsdk_log = logging.getLogger("spsdk.mboot.mcuboot")
    level = spsdk_log.level
    try:
        spsdk_log.setLevel(logging.WARNING)
        assert len(_read_phase(listener, path, [_data(b"\x01" * 16)], 16)) == 16
        assert built == []
        spsdk_log.setLevel(5)  # spsdk's TRACE
        lines: list[str] = []
        handler = logging.Handler(level=1)
        handler.emit = lambda record: lines.append(record.getMessage())
        spsdk_log.addHandler(handler)
        try:
            assert len(_read_phase(listener, path, [_data(b"\x01" * 16)], 16)) == 16
        finally:
            spsdk_log.removeHandler(handler)
        assert built == ["packet"]
        assert any(line.startswith("TX-PACKET") for line in lines)
        assert any(line.startswith("RX-PACKET") for line in lines)
        assert any(line.startswith("CMD: Status") for line in lines)
    finally:
        spsdk_log.setLevel(level)


# --- cooperative handles (engine/context.py: simulated boards served on trio's own thread) ---------


def test_only_a_socket_node_waits_cooperatively(node, tmp_path):
    from spsdk.exceptions import SPSDKConnectionError

    from gangd.io.transport.fd_device import cooperative_node

    path, _ = node
    assert cooperative_node(path)
    assert not cooperative_node("/dev/null")  # a character device: hidraw's writes block in the kernel
    assert not cooperative_node(str(tmp_path / "gone")) and not cooperative_node(None)
    with pytest.raises(SPSDKConnectionError, match="not a socket"):
        FdHidDevice("/dev/null", cooperative=True).open()


@pytest.fixture
def cooperative(node):
    """A cooperative handle on the node, and the board's end of it."""
    path, listener = node
    device = FdHidDevice(path, cooperative=True)
    device.open()
    peer, _ = listener.accept()
    yield device, peer
    device.dispose()
    peer.close()


@pytest.mark.trio
async def test_a_cooperative_read_lets_trio_run_while_it_waits(cooperative):
    device, peer = cooperative
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await greenback.with_portal_run_sync(device.read, 1024))

    with trio.fail_after(10):  # a read that held trio's thread would never let the answer be sent
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            peer.send(b"\x03answer")
    assert got == [b"\x03answer"]
    # A cancellation (a step's deadline) reaches the wait itself.
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught and got == [b"\x03answer"]


@pytest.mark.trio
async def test_a_cooperative_write_waits_for_room_or_for_an_answer(cooperative):
    """A data phase's report waits for room; an answer from the board (a refusal) ends the wait."""
    device, peer = cooperative
    report = b"\x02" + bytes(1023)
    taken: list[bool] = []

    def fill_then_write() -> None:
        while device.write_report(report) and not device.answer_waiting():
            pass  # until the socket is full: then the write waits, and the refusal ends it

    async def writer() -> None:
        await greenback.with_portal_run_sync(fill_then_write)
        taken.append(True)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.testing.wait_all_tasks_blocked()
            assert not taken  # the socket is full, the board reads nothing: the write waits
            peer.send(b"\x03refused")
    assert taken and device.read(1024) == b"\x03refused"


@pytest.mark.trio
async def test_a_cooperative_read_keeps_its_own_timeout_and_tells_a_hang_up(cooperative):
    """The wait's own timer where it comes first; the caller's deadline where that comes first;
    a board gone mid-wait is a disconnect, not a timeout (no poll of the handle's own tells it)."""
    device, peer = cooperative
    with trio.fail_after(10):
        with pytest.raises(SPSDKTimeoutError):
            await greenback.with_portal_run_sync(device.read, 1024, 50)  # 50 ms, before the 10 s
        with trio.move_on_after(0.05) as scope:  # a step's deadline before the read's own minute
            await greenback.with_portal_run_sync(device.read, 1024, 60_000)
        assert scope.cancelled_caught

        async def hang_up() -> None:
            await trio.testing.wait_all_tasks_blocked()
            peer.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hang_up)
            with pytest.raises(DeviceGoneError):
                await greenback.with_portal_run_sync(device.read, 1024)


def test_a_cooperative_handle_holds_one_descriptor_until_a_write_waits(node):
    """A simulated board's handle is its socket alone: no wake-up pipe (trio's cancellation ends
    its waits) and no epoll until a write must wait for room (rare: a data phase's writes fit)."""
    path, listener = node

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    device = FdHidDevice(path, cooperative=True)
    device.open()
    try:
        assert open_fds() == before + 1
        device.abort()  # nothing to wake, nothing raised
    finally:
        device.dispose()
    assert open_fds() == before
    blocking = FdHidDevice(path)
    blocking.open()
    try:
        assert open_fds() == before + 3  # the socket and abort()'s pipe: a thread may be blocked
    finally:
        blocking.dispose()
