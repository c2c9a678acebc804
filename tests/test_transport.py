"""gangd's fd transport: report boundaries, poll deadlines, abort from another thread, gone devices."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
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
