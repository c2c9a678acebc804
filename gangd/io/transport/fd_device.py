"""gangd's spsdk `DeviceBase`: HID reports over one file descriptor, with poll-based timeouts.

On hardware the descriptor is the board's own `/dev/hidrawN` (the exact node udev named for its
port); under simulation it is a SOCK_SEQPACKET unix socket to the simulated board, or the board's
emulated /dev/hidrawN (`gangd sim --hidraw`). All keep
report boundaries: one read returns one report, one write sends one. Everything above this class
(spsdk's bulk framing, commands and status codes) is spsdk's real code path.

Two ways to wait for the device, chosen when the handle is made:
- **cooperative**, for a socket node only (`cooperative_node`; gangd's jobs on simulated boards,
  `engine/context.py`): spsdk's synchronous code runs on trio's own thread inside a greenback
  portal, and a wait for the device is awaited there (`trio.lowlevel.wait_readable`, trio's
  epoll): a job waiting for its board costs no thread, and the step's deadline reaches the wait
  as trio's cancellation. A socket's send never blocks in the kernel (non-blocking, and the wait
  for room is awaited like a read). Why: with a worker thread per board call, 64 boards meant 64
  threads handing the GIL to each other at every system call; at N=64 a quarter of gangd's CPU
  was the kernel waking and parking them (perf: futex wake/wait under the GIL's mutex and
  condition variable), about 320 context switches per board (docs/PERFORMANCE.md).
- **blocking** (hidraw, tools, tests): `poll()` deadlines, never a blocking read that cannot be
  interrupted, and `abort()` wakes a call blocked in another thread at once. A hidraw write
  blocks in the kernel until its interrupt transfer is done whatever O_NONBLOCK says
  (usbhid_output_report -> usb_interrupt_msg, drivers/hid/usbhid/hid-core.c), so a hidraw handle
  is never cooperative: its calls run in the port's worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
import struct
import time
from functools import partial
from typing import Protocol

import greenback
import trio
from spsdk.exceptions import SPSDKConnectionError
from spsdk.utils.exceptions import SPSDKTimeoutError
from spsdk.utils.interfaces.device.base import DeviceBase

DEFAULT_TIMEOUT_MS = 5000
# linux/hidraw.h: HIDIOCGRAWINFO = _IOR('H', 0x03, struct hidraw_devinfo { u32 bustype; s16 vendor; s16 product; })
HIDIOCGRAWINFO = 0x80084803
_READ_EVENTS = select.POLLIN | select.POLLPRI


def cooperative_node(devnode: str | None) -> bool:
    """Whether a handle on `devnode` may wait cooperatively: a socket node (the simulator's), whose
    sends do not block in the kernel (module docstring). Anything else, or a node already gone,
    is not."""
    if devnode is None:
        return False
    try:
        return stat.S_ISSOCK(os.stat(devnode).st_mode)
    except OSError:
        return False


class DeviceGoneError(SPSDKConnectionError):
    """The device node no longer answers: the board was unplugged or re-enumerated."""


class WrongDeviceError(SPSDKConnectionError):
    """The node answers with other USB ids than the event named: not the board we were told of."""


class TransportAborted(SPSDKConnectionError):
    """The call was abandoned from outside (a deadline fired, or the job is being stopped)."""


class ReportTap(Protocol):
    """Sees every report this handle sends and receives (gangd/trace/conversation.py): must be
    cheap. The report is the tap's to keep: where the handle reuses a buffer, it passes a copy."""

    def sent(self, report: bytes | bytearray) -> None: ...

    def received(self, report: bytes | bytearray) -> None: ...


class FdHidDevice(DeviceBase):
    def __init__(
        self,
        devnode: str,
        timeout: int = DEFAULT_TIMEOUT_MS,
        expected_ids: tuple[int, int] | None = None,
        recorder: ReportTap | None = None,
        cooperative: bool = False,
    ) -> None:
        """`cooperative`: the handle is used only from a trio task inside a greenback portal
        (`greenback.ensure_portal`), and its waits are awaited on trio (module docstring);
        only for a socket node."""
        self.devnode = devnode
        self.cooperative = cooperative
        # cooperative writes wait for "writable or answered" on one descriptor trio can watch: an
        # epoll of the device's own, level-triggered for both (made at the first such wait)
        self._either: select.epoll | None = None
        self._pollers: dict[int, select.poll] = {}  # per event mask, on the open descriptor
        self.recorder = recorder
        self.expected_ids = expected_ids
        self._timeout = timeout
        self._fd: int | None = None
        self._sock: socket.socket | None = None
        # abort()'s wake-up for a call blocked in poll() in another thread; a cooperative wait is
        # ended by trio's cancellation instead, and needs none (two descriptors fewer per open)
        self._wake_r, self._wake_w = (-1, -1) if cooperative else os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._aborted = False

    # --- DeviceBase -----------------------------------------------------------------------------

    @property
    def is_opened(self) -> bool:
        return self._fd is not None

    @property
    def timeout(self) -> int:
        return self._timeout

    @timeout.setter
    def timeout(self, value: int) -> None:
        self._timeout = value

    def open(self) -> None:
        if self._fd is not None:
            return
        try:
            mode = os.stat(self.devnode).st_mode
            if stat.S_ISSOCK(mode):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
                try:
                    sock.connect(self.devnode)
                except OSError:
                    sock.close()
                    raise
                sock.setblocking(False)
                self._sock = sock
                self._fd = sock.fileno()
            else:
                self._fd = os.open(self.devnode, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                if stat.S_ISCHR(mode) and self.expected_ids is not None:
                    self._check_ids(self._fd)
        except WrongDeviceError:
            self.close()
            raise
        except FileNotFoundError as exc:
            raise DeviceGoneError(f"{self.devnode}: device node is gone") from exc
        except ConnectionRefusedError as exc:
            raise DeviceGoneError(f"{self.devnode}: device is gone") from exc
        except PermissionError as exc:
            raise SPSDKConnectionError(f"{self.devnode}: permission denied") from exc
        except OSError as exc:
            raise SPSDKConnectionError(f"{self.devnode}: cannot open: {exc.strerror}") from exc
        if self.cooperative and self._sock is None:
            self.close()
            raise SPSDKConnectionError(f"{self.devnode}: not a socket: its writes would block trio's thread")

    def close(self) -> None:
        if self._either is not None:
            self._either.close()
            self._either = None
        self._pollers.clear()
        if self._sock is not None:
            self._sock.close()
        elif self._fd is not None:
            os.close(self._fd)
        self._sock = None
        self._fd = None

    def read(self, length: int, timeout: int | None = None) -> bytes:
        """One report of at most `length` bytes (spsdk's reads: commands' answers; the streamed
        data phase reads into its own buffer with `read_report_into`)."""
        buffer = bytearray(length)
        count = self.read_report_into(buffer, timeout)
        return bytes(memoryview(buffer)[:count])

    def write(self, data: bytes, timeout: int | None = None) -> None:
        fd = self._require_open()
        if self.recorder is not None:  # before the write: the board may answer before it returns
            self.recorder.sent(data)
        try:
            written = os.write(fd, data)  # try first: the device rarely makes us wait
        except BlockingIOError:
            self._wait(fd, select.POLLOUT, timeout, "write")
            try:
                written = os.write(fd, data)
            except OSError as exc:
                raise self._gone(exc) from exc
        except OSError as exc:
            raise self._gone(exc) from exc
        if written != len(data):
            raise SPSDKConnectionError(f"{self.devnode}: short write ({written} of {len(data)} bytes)")

    def __str__(self) -> str:
        return f"hid:{self.devnode}"

    # --- data phases (stream.py): one system call per report, nothing per report besides --------

    def write_report(self, report: bytes | bytearray | memoryview) -> bool:
        """Send one report; False, without sending it, when the device answered instead of
        taking it (the data phase was ended early: a refusal is waiting to be read)."""
        fd = self._fd
        if fd is None or self._aborted:  # checked per report: an abort stops a data phase at once
            fd = self._require_open()
        if self.recorder is not None:  # a copy: the streamed data phase reuses its frame buffer
            self.recorder.sent(bytes(report))
        while True:
            try:
                written = os.write(fd, report)
                break
            except BlockingIOError:
                # Writable again, or answered; a socket can still refuse after poll() said
                # writable (room for less than a report): then wait again.
                if self._wait(fd, select.POLLOUT | select.POLLIN, None, "write") & _READ_EVENTS:
                    return False
            except OSError as exc:
                raise self._gone(exc) from exc
        if written != len(report):
            raise SPSDKConnectionError(f"{self.devnode}: short write ({written} of {len(report)} bytes)")
        return True

    def _read_into(self, fd: int, buffer: bytearray) -> int:
        if self._sock is not None:
            return self._sock.recv_into(buffer)
        data = os.read(fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def pause(self) -> None:
        """A cooperative handle's data phase lets the other jobs run, and a cancellation in (a
        trio checkpoint); for a blocking handle, nothing."""
        if self.cooperative:
            greenback.await_(trio.lowlevel.checkpoint())

    def answer_waiting(self) -> bool:
        """Whether the device has a report waiting to be read (a poll that does not wait)."""
        return bool(self._events_now(self._require_open(), _READ_EVENTS) & _READ_EVENTS)

    def _events_now(self, fd: int, mask: int) -> int:
        """The descriptor's events of `mask` now, without waiting: one poll(0), on a poller made
        once per mask while the handle is open (asked once per 32 reports in a data phase)."""
        poller = self._pollers.get(mask)
        if poller is None:
            poller = self._pollers[mask] = select.poll()
            poller.register(fd, mask)
        ready = poller.poll(0)
        return ready[0][1] if ready else 0

    def read_report_into(self, buffer: bytearray, timeout: int | None = None) -> int:
        """One report into `buffer`; returns its length. A socket (the simulator's) receives into
        the buffer itself; a hidraw node is read with read(2), because umockdev's preload, which
        emulates /dev/hidrawN in the tests, interposes read() and not readv()."""
        fd = self._fd
        if fd is None or self._aborted:
            fd = self._require_open()
        # Try first: in a data phase the next report is usually there already, and a poll()
        # per report is a measurable share of gangd's CPU at 64 boards.
        try:
            count = self._sock.recv_into(buffer) if self._sock is not None else self._read_into(fd, buffer)
        except BlockingIOError:
            count = self._read_after_wait(fd, buffer, timeout)
        except OSError as exc:
            raise self._gone(exc) from exc
        if not count:
            raise DeviceGoneError(f"{self.devnode}: device disconnected")
        if self.recorder is not None:  # a copy (one): the caller reuses its buffer
            self.recorder.received(buffer[:count])
        return count

    def _read_after_wait(self, fd: int, buffer: bytearray, timeout: int | None) -> int:
        """The read that found nothing waits for the device, then reads. A cooperative wait ends
        when trio's epoll says readable, which a spurious wake-up can also say: then it waits
        again, within the same time."""
        ms = self._timeout if timeout is None else timeout
        ends = time.monotonic() + ms / 1000
        while True:
            self._wait(fd, select.POLLIN, ms, "read")
            try:
                return self._read_into(fd, buffer)
            except BlockingIOError:
                ms = int((ends - time.monotonic()) * 1000)
                if not self.cooperative or ms <= 0:
                    raise SPSDKTimeoutError(f"{self.devnode}: no report") from None
            except OSError as exc:
                raise self._gone(exc) from exc

    # --- cancellation -------------------------------------------------------------------------

    def abort(self) -> None:
        """Wake any call blocked on this device (safe from any thread); later calls fail too."""
        self._aborted = True
        if self._wake_w < 0:  # cooperative: no thread to wake
            return
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    def dispose(self) -> None:
        """Close the device and the wake-up pipe; the object cannot be used afterwards."""
        self.close()
        for fd in (self._wake_r, self._wake_w):
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    # --- internals ----------------------------------------------------------------------------

    def _check_ids(self, fd: int) -> None:
        """Ask the hidraw driver which device this node is, before talking to it.

        Runs on every character-device node: a real /dev/hidrawN, or a simulated board's emulated
        one (`gangd sim --hidraw`, tests/hidraw); the simulator's sockets skip it.
        """
        _, vendor, product = struct.unpack("<Ihh", fcntl.ioctl(fd, HIDIOCGRAWINFO, bytes(8)))
        actual = (vendor & 0xFFFF, product & 0xFFFF)
        assert self.expected_ids is not None  # checked only when the caller named the ids
        if actual != self.expected_ids:
            raise WrongDeviceError(
                f"{self.devnode}: is {actual[0]:04x}:{actual[1]:04x}, "
                f"expected {self.expected_ids[0]:04x}:{self.expected_ids[1]:04x}"
            )

    def _require_open(self) -> int:
        if self._aborted:
            raise TransportAborted(f"{self.devnode}: aborted")
        if self._fd is None:
            raise SPSDKConnectionError(f"{self.devnode}: device is not open")
        return self._fd

    def _wait(self, fd: int, event: int, timeout: int | None, what: str) -> int:
        ms = self._timeout if timeout is None else timeout
        if self.cooperative:
            events = greenback.await_(self._ready(fd, event, ms))
            if events is None:
                raise SPSDKTimeoutError(f"{self.devnode}: no {what} within {ms} ms")
            return self._judge(events)
        poller = select.poll()
        poller.register(fd, event)
        poller.register(self._wake_r, select.POLLIN)
        ready = dict(poller.poll(ms))
        if self._wake_r in ready or self._aborted:
            raise TransportAborted(f"{self.devnode}: aborted")
        if fd not in ready:
            raise SPSDKTimeoutError(f"{self.devnode}: no {what} within {ms} ms")
        return self._judge(ready[fd])

    async def _ready(self, fd: int, event: int, ms: int) -> int | None:
        """The device's events once it is ready for `event` (None past `ms`), awaited on trio. A
        cancellation (the step's deadline, the job stopped) passes through as trio's.

        The wait's own timer is set only where it would fire before the caller's deadline: a
        job's handle waits up to HANDLE_TIMEOUT_MS (engine/context.py) under a step deadline of
        seconds, so its timer would never fire, and a cancel scope with a deadline costs about
        5 us to enter and leave (a deadline heap entry, trio's generator context manager)
        against 1.6 us to look at the effective deadline (py-spy: 3.4 % of gangd's samples at
        N=64, 17 waits a board)."""
        deadline = trio.current_time() + ms / 1000
        if trio.current_effective_deadline() <= deadline:
            return await self._until_ready(fd, event)
        with trio.CancelScope(deadline=deadline):
            return await self._until_ready(fd, event)
        return None

    async def _until_ready(self, fd: int, event: int) -> int:
        if event & select.POLLOUT:
            if event & _READ_EVENTS:  # writable, or answered: one descriptor trio can watch for both
                if self._either is None:  # made at the first such wait: a data phase's writes rarely wait
                    self._either = select.epoll(1)
                    self._either.register(fd, select.EPOLLIN | select.EPOLLOUT)
                either = self._either.fileno()
                woken = partial(trio.lowlevel.wait_readable, either)
            else:
                woken = partial(trio.lowlevel.wait_writable, fd)
            while True:  # trio's wake-up may be spurious, or the room gone again: ask the descriptor
                await woken()
                events = self._events_now(fd, event)
                if events:
                    return events
        # A read: trio's epoll said readable (or hung up, or failed), and the caller's read tells
        # which (a report, b"" for a hang-up, an OSError), or EAGAIN for a spurious wake-up, on
        # which it waits again: no poll(0) of our own to ask what the read will tell anyway.
        await trio.lowlevel.wait_readable(fd)
        return select.POLLIN

    def _judge(self, events: int) -> int:
        if self._aborted:
            raise TransportAborted(f"{self.devnode}: aborted")
        if events & (select.POLLNVAL | select.POLLERR) or (events & select.POLLHUP and not events & _READ_EVENTS):
            raise DeviceGoneError(f"{self.devnode}: device disconnected")
        return events

    def _gone(self, exc: OSError) -> SPSDKConnectionError:
        if exc.errno in (errno.ENODEV, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EIO):
            return DeviceGoneError(f"{self.devnode}: device disconnected ({exc.strerror})")
        return SPSDKConnectionError(f"{self.devnode}: {exc.strerror}")
