"""Every board of a hub on one thread: each board's engine runs in a greenlet, and where it would
block (waiting for the host, its clock's sleep, the re-enumeration gap) it switches to the loop,
which waits on all the boards' sockets and deadlines at once (a selector and a timer heap).

Why: with a thread per board, 64 boards handed the GIL to each other at every report (a socket
call and a clock sleep each release it), and a fifth of the simulator's CPU at N=64 was the kernel's
futex and context switches for those handoffs (perf, docs/PERFORMANCE.md). On one thread a wait is
a greenlet switch. The engines stay synchronous code, unchanged; only the waits below know the loop,
and each falls back to blocking the calling thread when it is not on one (UART boards, the hidraw
emulation and tests that drive a link by hand keep their threads).

Waits: the loop watches the boards' sockets with epoll, each registered for as long as its board
waits on it (two epoll_ctl calls a wait, about 1.7 us), and sleeps in select(2) on the epoll
descriptor alone, whose timeout is in microseconds (epoll_wait's is in whole milliseconds), so a
report due 0.5 ms after the last one leaves then, within the kernel's 50 us timer slack. It used to
hand select(2) every watched socket: each call then set up and tore down a wait on each of them,
26 us of CPU a wait with 65 sockets watched against 9-16 us this way (64 boards re-enumerating
hold about that many; measured in docs/PERFORMANCE.md), about 1,250 waits a batch of 64 boards.
select(2) takes descriptors below FD_SETSIZE (1024) only: should the epoll descriptor itself be
past that (a process with many files open when the loop starts), the loop waits in epoll until the
millisecond before the next deadline and sleeps the rest with `time.sleep` after a look at the
sockets that does not wait, so a host's report that arrives during that last sub-millisecond sleep
is seen when it ends (up to a millisecond late, never early).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable

from greenlet import getcurrent, greenlet

log = logging.getLogger(__name__)
_local = threading.local()
_EPOLL_GRAIN_S = 0.001  # epoll's timeout is in whole milliseconds, rounded up
_FD_SETSIZE = 1024  # select(2) takes descriptors below this
# What select(2) counted as readable or writable: a hang-up or an error wakes either wait.
_READ_EVENTS = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR


class Flag(threading.Event):
    """A `threading.Event` that also wakes the boards on a loop that wait on it (a board's
    `unplugged`: set from the operator's thread, it must end the board's wait at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers: list[Callable[[], None]] = []  # list append/remove/copy are atomic (GIL)

    def set(self) -> None:
        super().set()
        for waker in tuple(self._wakers):
            waker()

    def add_waker(self, waker: Callable[[], None]) -> None:
        self._wakers.append(waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        self._wakers.remove(waker)


class _Wait:
    """One parked board: the greenlet to resume (None once something resumed it), and whether
    its file descriptor was what resumed it."""

    __slots__ = ("task", "ready")

    def __init__(self, task: greenlet) -> None:
        self.task: greenlet | None = task
        self.ready = False


class Task:
    """A function running on the loop; `done` is set when it returns or raises."""

    def __init__(self) -> None:
        self.done = threading.Event()


class BoardLoop:
    def __init__(self, name: str = "sim-boards") -> None:
        # The descriptors watched, each with its parked board (None: the loop's wake-up pipe), and
        # the epoll instance that watches them (module doc).
        self._readers: dict[int, _Wait | None] = {}
        self._writers: dict[int, _Wait] = {}
        self._epoll = select.epoll()
        self._epoll_fd = self._epoll.fileno()
        self._timers: list[tuple[float, int, _Wait]] = []
        self._sequence = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._ready: deque[greenlet] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._readers[self._wake_r] = None
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._closing = False
        self._live = 0  # tasks spawned and not yet returned (counted on the loop's thread)
        self._main: greenlet | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- from any thread ----------------------------------------------------------------------

    def call_soon(self, function: Callable[[], None]) -> None:
        self._calls.append(function)
        if threading.current_thread() is not self._thread:
            try:
                os.write(self._wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass  # already full of wake-ups, or closed with the loop

    def spawn(self, function: Callable[..., object], *args: object) -> Task:
        task = Task()

        def run() -> None:
            try:
                function(*args)
            except Exception:  # a task's bug must not end the loop under the other boards
                log.exception("simulator task %r failed", function)
            finally:
                self._live -= 1
                task.done.set()

        def start() -> None:
            self._live += 1
            self._ready.append(greenlet(run, parent=self._main))

        self.call_soon(start)
        return task

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def close(self) -> None:
        """Stop once no task is parked any more (the hub unplugs every board first)."""
        self._closing = True
        self.call_soon(lambda: None)
        if not self.on_loop_thread():
            self._thread.join(timeout=5)

    # --- from a task on the loop --------------------------------------------------------------

    def block(
        self,
        fd: int | None = None,
        events: int = selectors.EVENT_READ,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> bool:
        """Park the calling task until `fd` is ready (True), `timeout` passes or `stop` is set
        (False). A `stop` that is not a `Flag` cannot wake the loop, so the wait is then cut to
        50 ms, the board threads' poll."""
        wait = _Wait(getcurrent())
        if stop is not None and not isinstance(stop, Flag):
            timeout = 0.05 if timeout is None else min(timeout, 0.05)
        table = self._readers if events == selectors.EVENT_READ else self._writers
        if fd is not None:
            table[fd] = wait
            self._watch(fd)
        if timeout is not None:
            heapq.heappush(self._timers, (time.monotonic() + timeout, next(self._sequence), wait))
        waker = None
        if isinstance(stop, Flag):

            def waker() -> None:
                self.call_soon(lambda: self._resume(wait))

            stop.add_waker(waker)
        try:
            if stop is None or not stop.is_set():
                assert self._main is not None
                self._main.switch()
        finally:
            wait.task = None
            if fd is not None:
                del table[fd]
                self._watch(fd)
            if waker is not None and isinstance(stop, Flag):
                stop.remove_waker(waker)
        return wait.ready

    # --- the loop -----------------------------------------------------------------------------

    def _resume(self, wait: _Wait) -> None:
        if wait.task is not None:
            self._ready.append(wait.task)
            wait.task = None

    def _watch(self, fd: int) -> None:
        """Have epoll watch `fd` for what its parked boards wait for (nothing: not at all)."""
        mask = (select.EPOLLIN if fd in self._readers else 0) | (select.EPOLLOUT if fd in self._writers else 0)
        if mask:
            try:
                self._epoll.register(fd, mask)
            except FileExistsError:  # a reader and a writer on one descriptor
                self._epoll.modify(fd, mask)
        else:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # closed while its board waited: the kernel dropped it with the file

    def _select(self, timeout: float | None) -> list[_Wait | None]:
        """The parked boards whose descriptor is ready (None: the wake-up pipe), waiting up to
        `timeout` seconds (None: until one is)."""
        if timeout is None:
            events = self._epoll.poll(-1)
        elif timeout > 0 and self._epoll_fd < _FD_SETSIZE:
            if not select.select((self._epoll_fd,), (), (), timeout)[0]:
                return []
            events = self._epoll.poll(0)
        else:
            events = self._epoll.poll(timeout)
        readers, writers = self._readers, self._writers
        ready: list[_Wait | None] = []
        for fd, mask in events:
            if mask & _READ_EVENTS and fd in readers:
                ready.append(readers[fd])
            if mask & _WRITE_EVENTS and fd in writers:
                ready.append(writers[fd])
        return ready

    def _run(self) -> None:
        _local.loop = self
        self._main = getcurrent()
        calls, ready, timers = self._calls, self._ready, self._timers
        while True:
            while calls or ready:
                while calls:
                    calls.popleft()()
                while ready:
                    ready.popleft().switch()
            if self._closing and not self._live:
                break
            timeout = None if not timers else max(0.0, timers[0][0] - time.monotonic())
            if timeout is None or timeout <= 0 or self._epoll_fd < _FD_SETSIZE:
                self._dispatch(self._select(timeout))
            elif timeout > _EPOLL_GRAIN_S:
                # epoll rounds up to the millisecond: wake in the millisecond before the deadline
                self._dispatch(self._select(timeout - _EPOLL_GRAIN_S))
            elif not self._dispatch(self._select(0)):
                # The deadline is less than epoll's grain away and nothing is ready: sleep to it
                # precisely, then take what arrived meanwhile (module doc).
                time.sleep(timeout)
                self._dispatch(self._select(0))
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                self._resume(heapq.heappop(timers)[2])
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _dispatch(self, ready: list[_Wait | None]) -> bool:
        for wait in ready:
            if wait is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif wait.task is not None:
                wait.ready = True
                self._resume(wait)
        return bool(ready)


def running_loop() -> BoardLoop | None:
    """The loop the calling code runs on as a task, or None (a thread of its own)."""
    loop: BoardLoop | None = getattr(_local, "loop", None)
    if loop is None or getcurrent() is loop._main:
        return None
    return loop


def wait_event(event: threading.Event, timeout: float | None = None) -> bool:
    """`event.wait(timeout)`, parking only the calling board when it runs on a loop."""
    loop = running_loop()
    if loop is None:
        return event.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not event.is_set():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        loop.block(timeout=left, stop=event)
    return event.is_set()


__all__ = ["BoardLoop", "Flag", "Task", "running_loop", "wait_event"]
