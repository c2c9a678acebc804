"""The timing model holds at real time: a 1 MiB write-memory takes what the model says.

The expectation is computed from the model (reports at the HID interval, NOR pages programmed
per packet), never written into the test as a number.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from gangd.sim import TimingModel, timing
from gangd.sim.links import MBOOT_HID_PACKET_SIZE, HidSocket

from .flow import configure_flexspi, load_flashloader, open_mboot

PORT = "1-1.4"
ADDRESS = 0x6000_0000
SIZE = 1024 * 1024


@pytest.mark.timing
def test_one_mebibyte_write_takes_the_modelled_time(hub, events, boards, flashloader_image):
    model = TimingModel()  # the defaults, at time scale 1
    board = hub.plug(PORT, boards(timing=model))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    data = os.urandom(SIZE)
    with open_mboot(devnode, timeout_ms=10_000) as mboot:
        configure_flexspi(mboot)
        assert mboot.write_memory(0x2020_0000, b"\0" * 16)  # learns the packet size first
        charged_before = board.clock.charged_s
        started = time.monotonic()
        assert mboot.write_memory(ADDRESS, data)
        elapsed = time.monotonic() - started
        charged = board.clock.charged_s - charged_before
    expected = model.write_memory_s(ADDRESS, SIZE, MBOOT_HID_PACKET_SIZE, to_flash=True)
    # The board charged exactly the model (the model is what the simulator does) ...
    assert charged == pytest.approx(expected, rel=1e-9)
    # ... and the wall clock agrees within 10 %.
    assert abs(elapsed - expected) <= 0.10 * expected, f"took {elapsed:.3f} s, model says {expected:.3f} s"
    print(f"1 MiB write-memory: {elapsed:.3f} s measured, {expected:.3f} s modelled")
    assert board.flash_image(ADDRESS, SIZE) == data


class FakeTime:
    """A monotonic clock that moves only when the board sleeps or the test says time passed."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def wait(self, seconds: float) -> bool:  # the board's stop Event
        self.sleep(seconds)
        return False


def test_a_board_kept_off_the_cpu_repays_the_delay_and_an_idle_one_does_not(monkeypatch):
    """A loaded machine keeps the board's thread from running for milliseconds at a time. That is not
    time the board spent idle: it owes the model its cost, as a real board's clock does not stop when
    the host is busy. Time spent waiting for the host is idle, and is not saved up."""
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    clock = timing.BoardClock(TimingModel(time_scale=1.0), stop=fake)  # type: ignore[arg-type]

    start = fake.now
    clock.charge(0.010)
    fake.now += 0.030  # the board's thread was kept off the CPU for 30 ms mid-transfer
    clock.charge(0.010)
    clock.charge(0.030)
    assert fake.now == pytest.approx(start + 0.050)  # 50 ms charged, 50 ms passed: the delay was repaid

    clock.idle()  # the board waits for the host ...
    fake.now += 0.030  # ... which answers 30 ms later
    before = fake.now
    clock.charge(0.010)
    assert fake.now == pytest.approx(before + 0.010)  # the wait is not owed, nor saved up


def test_reports_taken_are_owed_and_the_reply_leaves_at_the_same_deadline(monkeypatch):
    """The host cannot see when the board takes a report from its socket, only when the reply comes:
    the board sleeps only once it runs `AHEAD_MAX_S` ahead, and the reply's charge sleeps the rest
    off, so the reply leaves when a sleep per report would have sent it."""
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    clock = timing.BoardClock(TimingModel(time_scale=1.0), stop=fake)  # type: ignore[arg-type]
    interval = clock.model.report_interval_s
    reports = 100

    start = fake.now
    for taken in range(1, reports + 1):
        clock.owe(interval)
        assert start + taken * interval - fake.now <= timing.AHEAD_MAX_S + 1e-9  # never further ahead
    assert len(fake.slept) < reports // 10  # a sleep per AHEAD_MAX_S, not per report
    clock.charge(interval)  # the reply
    assert fake.now == pytest.approx(start + (reports + 1) * interval)

    clock.owe(0.010)  # pages programmed; then the board leaves (hub: settle before it goes)
    clock.settle()
    assert fake.now == pytest.approx(start + (reports + 1) * interval + 0.010)


def test_an_idle_board_counts_from_when_the_hosts_report_arrived(monkeypatch):
    """A board that waited for the host counts its next costs from when the host's report reached
    it, not from when the simulator's thread got to it: on a loop serving every board, that thread
    may be busy with other boards for milliseconds, which a real board's own CPU is not. Nor does
    it count from before the report arrived, where the host took its time."""
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    clock = timing.BoardClock(TimingModel(time_scale=1.0), stop=fake)  # type: ignore[arg-type]
    interval = clock.model.report_interval_s

    clock.charge(interval)  # the board's last reply
    replied = fake.now
    clock.idle()  # waits for the host ...
    arrived = fake.now + 0.020  # ... whose command arrives 20 ms later ...
    fake.now += 0.026  # ... and is read 6 ms after that, the loop busy with other boards
    clock.owe(interval, arrived)
    clock.charge(0.010)  # the reply, 10 ms of work later
    assert fake.now == pytest.approx(arrived + interval + 0.010)

    clock.charge(interval)
    clock.idle()
    arrived = fake.now + 0.001  # a host that answers within a millisecond ...
    fake.now = arrived
    clock.owe(interval, arrived)
    clock.charge(interval)
    assert fake.now == pytest.approx(arrived + 2 * interval)  # ... gets nothing of its wait back
    assert replied < arrived


def test_the_socket_tells_the_board_when_the_host_sent_its_report():
    """The link reads the report that ends a wait with the kernel's stamp of the host's send
    (SO_TIMESTAMPNS): a board read 30 ms late still counts from the send."""
    device, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    clock = timing.BoardClock(TimingModel(time_scale=1.0))
    hid = HidSocket(device, clock, threading.Event())
    interval = clock.model.report_interval_s
    try:
        clock.idle()
        sent_before = time.monotonic()
        host.send(bytes(1024))
        # The condition under test, not a wait for an event: the simulator's thread is busy
        # elsewhere for 30 ms while the report waits in the socket.
        time.sleep(0.030)
        read_at = time.monotonic()
        assert hid.recv_report() == bytes(1024)
        owed_until = clock._deadline
        assert owed_until >= sent_before + interval - 0.001  # not before the host sent it
        assert owed_until <= read_at - 0.020 + interval  # counted from the send, not the read
    finally:
        device.close()
        host.close()
