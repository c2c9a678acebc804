"""Every board of a hub on one thread (gangd/sim/loop.py): a board's wait parks it, never the thread."""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

from gangd.sim import TimingModel
from gangd.sim.links import HidSocket
from gangd.sim.loop import BoardLoop, Flag
from gangd.sim.timing import BoardClock

from .flow import load_flashloader

WAIT_S = 10  # a deadline for the test's waits, never reached when the loop works


def test_a_hubs_boards_run_on_its_one_loop_thread(hub, events, boards, flashloader_image):
    threads: set[str] = set()
    hub.subscribe(lambda _event: threads.add(threading.current_thread().name))
    for port in ("1-1.1", "1-1.2", "1-1.3"):
        hub.plug(port, boards())
    load_flashloader(events, "1-1.2", *flashloader_image)  # traffic, a jump and a re-enumeration
    for port in ("1-1.1", "1-1.2", "1-1.3"):
        hub.unplug(port)
        events.next(port, "remove")
    assert threads == {hub.loop._thread.name}
    assert not [t for t in threading.enumerate() if t.name.startswith("sim-port-")]


def test_a_flag_ends_a_wait_that_nothing_else_would():
    """A board waiting for its host waits without a timeout (nothing polls) and its `unplugged`
    flag, set from another thread, wakes it; another board's wait goes on meanwhile."""
    loop = BoardLoop()
    flag = Flag()
    host, board = os.pipe()  # the board waits for `host` to become readable: it never does
    results: dict[str, bool] = {}
    try:
        parked = loop.spawn(lambda: results.setdefault("parked", loop.block(host, stop=flag)))
        other = loop.spawn(lambda: results.setdefault("other", loop.block(timeout=0.2)))
        assert other.done.wait(WAIT_S) and results["other"] is False  # its timeout passed
        assert not parked.done.is_set()  # no poll let the first one go meanwhile
        flag.set()
        assert parked.done.wait(WAIT_S) and results["parked"] is False  # stopped, not readable
        ready = loop.spawn(lambda: results.setdefault("ready", loop.block(host, stop=Flag())))
        os.write(board, b"x")
        assert ready.done.wait(WAIT_S) and results["ready"] is True
    finally:
        loop.close()
        os.close(host)
        os.close(board)


def test_descriptors_past_select_s_limit_are_watched_and_timers_never_fire_early():
    """select(2) takes descriptors below 1024 only. A board's socket numbered higher (a process with
    many files open) is watched all the same; and a loop whose own epoll descriptor is past 1024
    waits in epoll's whole milliseconds, so its sub-millisecond timers must still never fire early."""
    host, board = os.pipe()
    high = os.dup2(host, 1500)
    fillers = [os.dup(host) for _ in range(1100)]  # the next loop's own descriptors land past 1024
    late_loop = BoardLoop()
    for fd in fillers:
        os.close(fd)
    loop = BoardLoop()
    results: dict[str, object] = {}

    def timed() -> None:
        started = time.monotonic()
        late_loop.block(timeout=0.0005)
        results["slept"] = time.monotonic() - started

    try:
        assert late_loop._epoll_fd >= 1024 > loop._epoll_fd
        for each in (loop, late_loop):
            results.clear()
            ready = each.spawn(lambda each=each: results.setdefault("ready", each.block(high, stop=Flag())))
            os.write(board, b"x")
            assert ready.done.wait(WAIT_S) and results["ready"] is True
            os.read(host, 1)
        timer = late_loop.spawn(timed)
        assert timer.done.wait(WAIT_S) and results["slept"] >= 0.0005  # never early
    finally:
        loop.close()
        late_loop.close()
        for fd in (host, board, high):
            os.close(fd)


def test_a_reader_and_a_writer_on_one_descriptor_both_wake():
    """Two boards' waits on one socket, one for a report and one for room: epoll watches the
    descriptor once, for both."""
    loop = BoardLoop()
    device, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    results: dict[str, bool] = {}
    try:
        while True:  # fill the socket: a wait for room then waits
            try:
                device.send(bytes(1024), socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        reader = loop.spawn(lambda: results.setdefault("reader", loop.block(device.fileno(), stop=Flag())))
        writer = loop.spawn(
            lambda: results.setdefault("writer", loop.block(device.fileno(), selectors.EVENT_WRITE, stop=Flag()))
        )
        host.send(b"report")
        assert reader.done.wait(WAIT_S) and results["reader"] is True
        assert not writer.done.is_set()
        while True:  # the host reads: room again
            try:
                host.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        assert writer.done.wait(WAIT_S) and results["writer"] is True
    finally:
        loop.close()
        device.close()
        host.close()


def test_a_board_whose_host_stops_reading_does_not_hold_up_the_others():
    loop = BoardLoop()
    device, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    hid = HidSocket(device, BoardClock(TimingModel(time_scale=0)), Flag())
    reports = 200  # more than the socket holds (about 90): the board must wait for room
    try:
        sender = loop.spawn(lambda: [hid.send_report(bytes(1024)) for _ in range(reports)])
        other = loop.spawn(lambda: None)
        assert other.done.wait(WAIT_S)  # ran while the sender waited for its host
        assert not sender.done.is_set()
        for _ in range(reports):
            assert len(host.recv(2048)) == 1024
        assert sender.done.wait(WAIT_S)
    finally:
        loop.close()
        device.close()
        host.close()
