"""Simulated boards behind emulated /dev/hidrawN nodes, so that the real USB path drives them.

On Linux, NXP's `blhost -u` / `sdphost -u` (spsdk over libusbsio, which is hidapi's hidraw backend)
and gangd (pyudev, then its fd transport) find boards with libudev and talk to /dev/hidrawN: open,
ioctl, poll, read, write. `HidrawHub` puts each simulated board there, in a umockdev testbed: a
sysfs chain usb_device (named by its port path) > usb_interface > hid (carrying the stage's report
descriptor) > hidraw, announced with uevents, and a handler that answers the node's ioctls, reads
and writes live from the board's protocol engines. Every program started under `umockdev-wrapper`
with the testbed's UMOCKDEV_DIR (`gangd sim --hidraw` prints it) sees the boards as hardware.

hidraw's semantics are kept (Linux `drivers/hid/hidraw.c`, `drivers/hid/usbhid/hid-core.c`):
- every open handle gets every input report, one per read, report id first, cut to the reader's
  buffer; an empty handle reads EAGAIN (hidapi polls first); at most 64 reports wait per handle
  (HIDRAW_BUFFER_SIZE), newer ones are dropped;
- a write is one output report and returns once the board has taken it (the device NAKs until it
  is ready to receive), or fails with ETIMEDOUT after 5 s (USB_CTRL_SET_TIMEOUT);
- usbhid polls the IN endpoint only while the node is open: with no handle open, the board's next
  report waits in its endpoint until one is;
- HIDIOCGRAWINFO, HIDIOCGRDESCSIZE, HIDIOCGRDESC and HIDIOCGRAW{NAME,PHYS,UNIQ} are answered;
  other requests get ENOTTY (feature/input/output report ioctls are not emulated: neither spsdk
  nor gangd uses them);
- a board that leaves (jump, reset, unplug, power cycle) takes its node with it: reports already
  queued are still read, then EIO; writes and ioctls get ENODEV; poll() says POLLERR | POLLHUP;
  its devices are removed with their uevents, children first, and the next enumeration gets a
  new hidrawN, as the kernel does;
- each port has the `disable` attribute Linux gives hub ports: writing 1 cuts its power, 0
  restores it and the board boots into its ROM (gangd's power-cycle recovery writes it).

What umockdev (0.17) makes us do, each found on these machines (docs/UMOCKDEV-HIDRAW.md): the
node is a symlink to a pty, and umockdev does not interpose poll(), so one byte waits in the pty
while any handle has a report queued; the testbed must be built by a process under the preload,
and the handler attached before the devices are added (their add uevents go out at once); a
client's close is seen only through a weak reference on its IoctlClient; the preload aborts past
50 emulated fds in one client process, so keep one process's boards to a few dozen; several
handles on one node share the pty, so a handle may see POLLIN for another's report (then EAGAIN).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import itertools
import logging
import os
import queue
import resource
import select
import shutil
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gangd.core.events import ADD, REMOVE, PortEvent
from gangd.sim.board import ROM, LeaveStage, SimBoard, Unplugged
from gangd.sim.hid_reports import FLASHLOADER_DESCRIPTOR, ROM_DESCRIPTOR
from gangd.sim.hub import SimHub, SimPort, serve_hid
from gangd.sim.links import LinkClosed

log = logging.getLogger(__name__)

# linux/hidraw.h: _IOR('H', 0x01, int), _IOR('H', 0x02, struct hidraw_report_descriptor),
# _IOR('H', 0x03, struct hidraw_devinfo); NAME/PHYS/UNIQ are _IOC(_IOC_READ, 'H', nr, len).
HIDIOCGRDESCSIZE = 0x80044801
HIDIOCGRDESC = 0x90044802
HIDIOCGRAWINFO = 0x80084803
_IOC_READ_H = (2 << 30) | (ord("H") << 8)
_NR_NAME, _NR_PHYS, _NR_UNIQ = 0x04, 0x05, 0x08
BUS_USB = 0x03
HID_MAX_DESCRIPTOR_SIZE = 4096
HID_MAX_BUFFER_SIZE = 16384  # a write longer than this is EINVAL (include/linux/hid.h)
HIDRAW_BUFFER_SIZE = 64  # reports queued per open handle (drivers/hid/hidraw.c)
WRITE_TIMEOUT_S = 5.0  # usbhid_output_report: usb_interrupt_msg(..., USB_CTRL_SET_TIMEOUT)
# After a jump or a reset the board stops answering at once, but a host notices the device gone
# only later (hub status polling, then the disconnect): time enough to read the board's last reply.
DRAIN_S = 1.0
HIDRAW_MAJOR = 240  # allocated dynamically by the kernel; any free number does here
TIOCGPTPEER = 0x5441  # the pty slave of a master fd, without a path (Linux >= 4.13)
# What a foreign node answers (fault `foreign-node`): a USB keyboard's ids.
FOREIGN_IDS = (0x046D, 0xC31C)


# The controller each simulated bus hangs off, in sysfs and in HID_PHYS (usb_make_path): bus 1 on
# the chipset's xHCI, every further bus (`gangd sim --hidraw --controllers K`) on a PCI function of
# its own, as an added USB card is, so that gangd's topology (gangd/io/topology.py) reads as many
# controllers as the simulator's enumeration queues (gangd/sim/enumeration.py). Our choice of
# addresses: 0000:00:14.0 is the usual Intel xHCI's; the cards on buses 0000:02:00.0 onwards.
def _controller(bus: int) -> str:
    return "0000:00:14.0" if bus == 1 else f"0000:{bus:02x}:00.0"


def _pci(bus: int) -> str:
    return f"/devices/pci0000:00/{_controller(bus)}"


_POLL_S = 0.05  # how often a blocked board looks at its stop flag
_HOUSEKEEPING_S = 0.05  # how often write timeouts and the ports' power switches are looked at
_ON_BUS, _LEAVING, _GONE = "on-bus", "leaving", "gone"


class HidrawError(RuntimeError):
    """umockdev is missing, or the testbed cannot be made here."""


def _umockdev():
    """gi's UMockdev, imported only on the hidraw path: the rest of gangd runs without gi."""
    try:
        import gi

        gi.require_version("UMockdev", "1.0")
        from gi.repository import UMockdev
    except (ImportError, ValueError) as exc:
        raise HidrawError(
            f"umockdev's Python bindings are not importable ({exc}): install python3-gi, umockdev and "
            "gir1.2-umockdev-1.0, and use a venv made with --system-site-packages (scripts/setup does both)"
        ) from None
    return UMockdev


def under_preload() -> bool:
    return "libumockdev-preload" in os.environ.get("LD_PRELOAD", "")


def reexec_under_wrapper(argv: list[str]) -> None:
    """Run `gangd ARGV` again under umockdev-wrapper, unless this process already is (the testbed
    must be built by a process with umockdev's preload library)."""
    if under_preload():
        return
    wrapper = shutil.which("umockdev-wrapper")
    if wrapper is None:
        raise HidrawError("umockdev-wrapper not found: install umockdev (scripts/setup does)")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(wrapper, [wrapper, sys.executable, "-m", "gangd", *argv])


def _take_byte(fd: int, timeout: float = WRITE_TIMEOUT_S) -> None:
    """Read back the one byte written to the pty master, waiting for it if it is still on its way.

    A byte written to a pty master reaches the slave side later: the kernel queues it in the
    master's flip buffer and a workqueue moves it to the slave's line discipline (tty_buffer.c,
    flush_to_ldisc); on a loaded machine that took up to 160 ms here (0.02 ms median). A
    non-blocking read in that window finds nothing (EAGAIN): a host that reads before it polls
    (gangd's fd transport, in a data phase) and takes a report queued just before would get EIO
    for it (the report lost after the board acted on it); a handle closing then would leave the
    byte to arrive later and wake the next handle's poll() for no report (a read of nothing,
    which spsdk takes for a timeout). Found by reading the code, not seen in the loaded runs
    (umockdev's round trip to this handler is usually longer than the byte's). The byte was
    written under the same lock and always arrives."""
    while True:
        try:
            os.read(fd, 1)
            return
        except BlockingIOError:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError(f"the pty's byte did not arrive within {timeout} s") from None


@dataclass(frozen=True)
class NodeIdentity:
    """What the node says about itself through its ioctls."""

    ids: tuple[int, int]  # HIDIOCGRAWINFO vendor, product
    name: str  # HIDIOCGRAWNAME: "<manufacturer> <product>"
    phys: str  # HIDIOCGRAWPHYS: usb-<controller>-<devpath>/input<interface>
    uniq: str  # HIDIOCGRAWUNIQ: the USB serial number
    descriptor: bytes  # HIDIOCGRDESC


@dataclass
class _Write:
    report: bytes
    client: Any  # UMockdev.IoctlClient, completed when the board takes the report
    deadline: float


def _answering(handler: Callable[..., None]) -> Callable[..., bool]:
    """A umockdev signal handler that always answers its client: an exception in the simulator
    becomes EIO for that call (unanswered, the client would fall through to the bare pty)."""

    @functools.wraps(handler)
    def wrapper(self, _base, client) -> bool:
        try:
            handler(self, client)
        except Exception:
            log.exception("emulated %s: handler failed", self.devnode)
            client.complete(-1, errno.EIO)
        return True

    return wrapper


class HidrawNode:
    """One enumeration of a board as /dev/hidrawN.

    Host side: the umockdev handler answering every open handle's ioctls, reads and writes.
    Board side: a report channel (`recv_report` / `send_report`, like `links.HidSocket`) on which
    the board's ROM or flashloader engine runs unchanged.
    """

    def __init__(self, umockdev, number: int, board: SimBoard, identity: NodeIdentity, devnull: int) -> None:
        self.number = number
        self.devnode = f"/dev/hidraw{number}"
        self.board = board
        self.clock = board.clock
        self.identity = identity
        self.syspaths: list[str] = []  # sysfs paths of the board's devices, children first
        self.ptyname: str | None = None
        self._stop = board.unplugged
        self._devnull = devnull
        self._cond = threading.Condition(threading.RLock())
        self._state = _ON_BUS
        self._handles: dict[int, deque[bytes]] = {}  # open handle (IoctlClient address) -> its reports
        self._inbound: deque[_Write] = deque()  # written reports the board has not taken yet
        self._master: int | None = None
        self._peer: int | None = None
        self._ready = False  # one byte waits in the pty: some handle has a report queued
        self.handler = umockdev.IoctlBase()
        self.handler.connect("client-connected", self._on_connected)
        self.handler.connect("handle-ioctl", self._on_ioctl)
        self.handler.connect("handle-read", self._on_read)
        self.handler.connect("handle-write", self._on_write)

    # --- the pty that carries poll() ------------------------------------------------------------

    def attach_pty(self, master: int, ptyname: str | None) -> None:
        with self._cond:
            self._master = master
            self._peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.ptyname = ptyname
            self._update_ready()

    def _update_ready(self) -> None:
        """Keep one byte in the pty while any handle has a report, none otherwise (lock held)."""
        want = any(self._handles.values())
        if want == self._ready or self._master is None or self._peer is None:
            return
        if want:
            os.write(self._master, b"\0")
        else:
            _take_byte(self._peer)
        self._ready = want

    # --- board side -----------------------------------------------------------------------------

    def recv_report(self) -> bytes:
        """The next report a host wrote; its write returns now (the device ACKs the transfer)."""
        with self._cond:
            if not self._inbound:
                self.clock.idle()
            while not self._inbound:
                if self._stop.is_set() or self._state != _ON_BUS:
                    raise LinkClosed("board left the bus")
                self._cond.wait(_POLL_S)
            write = self._inbound.popleft()
        self.clock.charge(self.clock.model.report_interval_s)
        write.client.complete(len(write.report), 0)
        return write.report

    def send_report(self, report: bytes) -> None:
        """One input report to every open handle; with none open, wait for one (see the module doc)."""
        self.clock.charge(self.clock.model.report_interval_s)
        with self._cond:
            if not self._handles:
                self.clock.idle()
            while not self._handles:
                if self._stop.is_set() or self._state != _ON_BUS:
                    raise LinkClosed("board left the bus")
                self._cond.wait(_POLL_S)
            for reports in self._handles.values():
                if len(reports) < HIDRAW_BUFFER_SIZE:
                    reports.append(report)
            self._update_ready()

    # --- leaving ---------------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Let open handles read what the board sent before it left (its reply to a jump or a
        reset), for up to `timeout` seconds; writes meanwhile wait and then fail with the node."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._state = _LEAVING
            while any(self._handles.values()) and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, _POLL_S))

    def gone(self) -> None:
        """The device is disconnected: ENODEV for writes (pending ones too) and ioctls, EIO for reads
        once a handle's queue is empty, and a hung-up pty, which poll() reports as POLLERR | POLLHUP
        like a gone hidraw node."""
        with self._cond:
            self._state = _GONE
            failed = list(self._inbound)
            self._inbound.clear()
            master, peer = self._master, self._peer
            self._master = self._peer = None
            self._cond.notify_all()
        for write in failed:
            write.client.complete(-1, errno.ENODEV)
        if peer is not None:
            os.close(peer)
        if master is not None:
            # umockdev keeps the pty master open after remove_device and closes it with the testbed.
            # Put /dev/null in its place: that closes the pty (the slave hangs up, the pty is freed)
            # and leaves the testbed a harmless descriptor to close at the end.
            os.dup2(self._devnull, master, inheritable=False)

    def expire(self, now: float) -> None:
        """Fail the writes the board has not taken within WRITE_TIMEOUT_S."""
        with self._cond:
            if not self._inbound or self._inbound[0].deadline > now:
                return
            expired = [w for w in self._inbound if w.deadline <= now]
            self._inbound = deque(w for w in self._inbound if w.deadline > now)
        for write in expired:
            write.client.complete(-1, errno.ETIMEDOUT)

    # --- host side: umockdev's handler, called from its worker thread ------------------------------

    def _handle(self, client) -> deque[bytes]:
        """The report queue of an open handle (lock held); made on first sight."""
        key = hash(client)  # PyGObject hashes a wrapper by its GObject's address
        reports = self._handles.get(key)
        if reports is None:
            reports = self._handles[key] = deque()
            client.weak_ref(self._on_closed, key)
            self._cond.notify_all()  # a board waiting for someone to poll its IN endpoint
        return reports

    def _on_connected(self, _base, client) -> None:
        with self._cond:
            self._handle(client)

    def _on_closed(self, key: int) -> None:
        with self._cond:
            self._handles.pop(key, None)
            self._update_ready()
            self._cond.notify_all()

    @_answering
    def _on_read(self, client) -> None:
        arg = client.get_arg()
        count = len(arg.retrieve())
        with self._cond:
            reports = self._handle(client)
            if reports:
                report = reports.popleft()[:count]  # hidraw cuts a report to the reader's buffer
                self._update_ready()
                self._cond.notify_all()
            else:
                report = None
                error = errno.EIO if self._state == _GONE else errno.EAGAIN
        if report is None:
            client.complete(-1, error)
            return
        if report:
            arg.update(0, report)
        client.complete(len(report), 0)

    @_answering
    def _on_write(self, client) -> None:
        report = bytes(client.get_arg().retrieve())
        with self._cond:
            self._handle(client)
            if self._state == _GONE:
                error = errno.ENODEV
            elif not 2 <= len(report) <= HID_MAX_BUFFER_SIZE:
                error = errno.EINVAL  # hidraw_send_report
            else:
                self._inbound.append(_Write(report, client, time.monotonic() + WRITE_TIMEOUT_S))
                self._cond.notify_all()
                return  # completed when the board takes it (recv_report), or by expire / gone
        client.complete(-1, error)

    @_answering
    def _on_ioctl(self, client) -> None:
        request = client.get_request()
        arg = client.get_arg()
        with self._cond:
            self._handle(client)
            gone = self._state == _GONE
        identity = self.identity
        if gone:
            client.complete(-1, errno.ENODEV)
        elif request == HIDIOCGRDESCSIZE:
            arg.resolve(0, 4).update(0, struct.pack("<i", len(identity.descriptor)))
            client.complete(0, 0)
        elif request == HIDIOCGRDESC:
            data = arg.resolve(0, 4 + HID_MAX_DESCRIPTOR_SIZE)
            (length,) = struct.unpack_from("<I", bytes(data.retrieve()[:4]))
            if length > HID_MAX_DESCRIPTOR_SIZE - 1:
                client.complete(-1, errno.EINVAL)
                return
            data.update(4, identity.descriptor[:length])
            client.complete(0, 0)
        elif request == HIDIOCGRAWINFO:
            vid, pid = identity.ids
            arg.resolve(0, 8).update(0, struct.pack("<IHH", BUS_USB, vid, pid))
            client.complete(0, 0)
        elif request & ~(0x3FFF << 16) == _IOC_READ_H | _NR_NAME:
            self._answer_string(client, arg, request, identity.name)
        elif request & ~(0x3FFF << 16) == _IOC_READ_H | _NR_PHYS:
            self._answer_string(client, arg, request, identity.phys)
        elif request & ~(0x3FFF << 16) == _IOC_READ_H | _NR_UNIQ:
            self._answer_string(client, arg, request, identity.uniq)
        else:
            client.complete(-1, errno.ENOTTY)

    @staticmethod
    def _answer_string(client, arg, request: int, text: str) -> None:
        """hidraw copies the string with its NUL, cut to the buffer, and returns the bytes copied."""
        value = text.encode() + b"\0"
        length = min(len(value), (request >> 16) & 0x3FFF)
        if length:
            arg.resolve(0, length).update(0, value[:length])
        client.complete(length, 0)


class HidrawPort(SimPort):
    """A hub port whose board appears as /dev/hidrawN in the testbed (see SimPort for its life)."""

    threaded = True  # its node's waits are on conditions, not on the hub's BoardLoop

    hub: HidrawHub

    def _enumerated(self, board: SimBoard) -> LeaveStage | None:
        node = self.hub._attach(self.path, board)
        self.devnode = node.devnode
        ids = board.usb_ids
        if board.first_enumerated_at is None:
            board.first_enumerated_at = time.monotonic()
        self.hub._emit(PortEvent(ADD, self.path, ids.vid, ids.pid, board.serial, node.devnode))
        self._on_bus.set()
        leave = None
        try:
            serve_hid(board, node)
        except LeaveStage as exc:
            board.clock.settle()  # it leaves the bus at its modelled time, owing nothing
            leave = exc
        except Unplugged:
            board.clock.settle()  # a fault's unplug comes when the model has the board there
            board.unplugged.set()
        except LinkClosed:
            pass  # unplugged (the only way a node closes under its board)
        finally:
            if leave is not None and not board.unplugged.is_set():
                node.drain(DRAIN_S)
            self.hub._detach(node)
            self.devnode = None
            self.hub._emit(PortEvent(REMOVE, self.path, ids.vid, ids.pid, board.serial, node.devnode))
        return leave


def _paragraph(
    path: str,
    props: dict[str, str],
    attrs: dict[str, str] | None = None,
    node: str | None = None,
    binary: dict[str, bytes] | None = None,
) -> str:
    """One device in umockdev's record format (P:, N:, E:, A:, H: lines; see umockdev-record)."""
    lines = [f"P: {path}"]
    if node:
        lines.append(f"N: {node}")
    lines += [f"E: {key}={value}" for key, value in props.items()]
    lines += [f"A: {key}={value}" for key, value in (attrs or {}).items()]
    lines += [f"H: {key}={value.hex().upper()}" for key, value in (binary or {}).items()]
    return "\n".join(lines) + "\n\n"


class HidrawHub(SimHub):
    """A simulated hub whose boards are emulated USB HID devices in a umockdev testbed.

    Build it in a process running under umockdev-wrapper (`reexec_under_wrapper`); one per
    process (the testbed is the process's UMOCKDEV_DIR). `umockdev_dir` is what clients need.
    """

    port_type = HidrawPort

    def __init__(
        self,
        ports: int | list[str],
        port_faults: dict[str, list[str]] | None = None,
        seed: int | None = None,
        root_ports: int = 1,
        controllers: int = 1,
    ) -> None:
        UMockdev = _umockdev()
        if not under_preload():
            raise HidrawError("the testbed must be built under umockdev-wrapper (gangd sim --hidraw re-runs itself so)")
        self._UMockdev = UMockdev
        self.testbed = UMockdev.Testbed.new()
        if not UMockdev.in_mock_environment():
            raise HidrawError("umockdev's preload is not active in this process")
        self._bed_lock = threading.Lock()
        self._hidraw_numbers = itertools.count()
        self._hid_numbers = itertools.count(1)
        self._devnums: dict[int, itertools.count] = {}
        self._hubs_made: set[str] = set()
        self._nodes: set[HidrawNode] = set()
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        # Each enumeration leaves the testbed one descriptor until it is dropped (see gone()):
        # allow a long session as many as the system lets this process have.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self._closed = threading.Event()
        super().__init__(
            ports,
            port_faults=port_faults,
            seed=seed,
            directory=self.testbed.get_root_dir(),
            root_ports=root_ports,
            controllers=controllers,
        )
        self._power_files: dict[str, str] = {}  # port -> its hub port's `disable` attribute, in the testbed
        self._powered: dict[str, bool] = {}
        with self._bed_lock:
            for path in self.ports:
                text, parent = self._hubs(path)
                if text:
                    self.testbed.add_from_string(text)
                self._power_files[path] = self._make_power_file(path, parent)
                self._powered[path] = True
        # Power switching takes a while (the board leaves or enumerates): done by its own thread,
        # so that the attributes are still watched meanwhile and no switch is missed.
        self._switches: queue.SimpleQueue[tuple[str, bool] | None] = queue.SimpleQueue()
        self._switcher = threading.Thread(target=self._switch_power, name="hidraw-port-power", daemon=True)
        self._switcher.start()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="hidraw-housekeeping", daemon=True)
        self._housekeeper.start()

    @property
    def umockdev_dir(self) -> str:
        return self.directory

    def close(self) -> None:
        self._closed.set()
        self._housekeeper.join()
        self._switches.put(None)
        self._switcher.join()
        super().close()  # unplugs every board: their nodes are removed
        # Dropping the testbed removes its directory and closes its descriptors (umockdev's own
        # finalizer, which fails loudly on a directory already gone).
        self.testbed = None
        os.close(self._devnull)

    # --- nodes ----------------------------------------------------------------------------------

    def _attach(self, port_path: str, board: SimBoard) -> HidrawNode:
        ids = board.usb_ids
        rom = board.stage == ROM and board.family.rom_protocol == "sdp"
        foreign = board.faults.fire("foreign-node") is not None
        # The USB strings are the simulator's own: no source for the real ROM's or flashloader's.
        manufacturer = "gangd simulator"
        product = f"{board.family.name} {'boot ROM (SDP)' if rom else 'flashloader (MCU bootloader)'}"
        devpath = port_path.split("-", 1)[1]
        identity = NodeIdentity(
            ids=FOREIGN_IDS if foreign else (ids.vid, ids.pid),
            name=f"{manufacturer} {product}",
            phys=f"usb-{_controller(int(port_path.split('-', 1)[0]))}-{devpath}/input0",
            uniq=board.serial,
            descriptor=ROM_DESCRIPTOR if rom else FLASHLOADER_DESCRIPTOR,
        )
        with self._bed_lock:
            node = HidrawNode(self._UMockdev, next(self._hidraw_numbers), board, identity, self._devnull)
            # Before the devices exist: their add uevents go out at once, and a client that opened
            # the node before the handler was there would get the bare pty.
            self.testbed.attach_ioctl(node.devnode, node.handler)
            text, node.syspaths = self._devices(port_path, board, node, manufacturer, product)
            self.testbed.add_from_string(text)
            root = self.directory
            node.attach_pty(self.testbed.get_dev_fd(node.devnode), os.readlink(f"{root}{node.devnode}"))
            self._nodes.add(node)
        return node

    def _detach(self, node: HidrawNode) -> None:
        with self._bed_lock:
            self._nodes.discard(node)
            # remove_device leaves the pty's map entry, and umockdev aborts when it maps a pty
            # twice: unlink it before gone() frees the pty, whose number a later node may get.
            if node.ptyname:
                ptymap = os.path.join(self.directory, "dev", ".ptymap", node.ptyname.replace("/", "_"))
                if os.path.lexists(ptymap):
                    os.unlink(ptymap)
            node.gone()  # the kernel marks the node gone before it removes the devices
            for path in node.syspaths:  # children first, each with its remove uevent
                self.testbed.uevent(path, "remove")
                self.testbed.remove_device(path)
            self.testbed.detach_ioctl(node.devnode)

    def _housekeeping(self) -> None:
        """Expire the writes boards do not take, and follow the hub ports' power switches."""
        while not self._closed.wait(_HOUSEKEEPING_S):
            with self._bed_lock:
                nodes = list(self._nodes)
            now = time.monotonic()
            for node in nodes:
                node.expire(now)
            for path, file in self._power_files.items():
                self._follow_power(path, file)

    def _follow_power(self, path: str, file: str) -> None:
        """The port's `disable` attribute as the kernel reads it (kstrtobool): 1 cuts the port's
        power, the board leaves the bus; 0 restores it, the board boots into its ROM on a new node
        (what gangd's SysfsPortPower writes, see gangd/power.py). The attribute is sampled every
        _HOUSEKEEPING_S: a port switched off for less than about 0.1 s may be missed (39 of 40
        cycles of 0.12 s were seen in a trial); gangd keeps one off for a second."""
        try:
            with open(file) as attribute:
                text = attribute.read().strip().lower()
        except OSError:
            return
        if text[:1] in ("1", "y") or text == "on":
            disabled = True
        elif text[:1] in ("0", "n") or text == "off":
            disabled = False
        else:
            return  # being rewritten, or not a boolean: the kernel would refuse it
        if disabled == (not self._powered[path]):
            return
        self._powered[path] = not disabled
        self._switches.put((path, not disabled))

    def _switch_power(self) -> None:
        while (switch := self._switches.get()) is not None:
            path, on = switch
            try:
                if on:
                    self.port(path).power_on()
                else:
                    self.port(path).power_off()
            except Exception as exc:  # a simulator bug: keep the hub alive and make it visible
                log.exception("switching the power of port %s failed", path)
                self.errors.append(exc)

    # --- sysfs ----------------------------------------------------------------------------------

    def _devnum(self, bus: int) -> int:
        counter = self._devnums.setdefault(bus, itertools.count(2))  # 1 is the root hub
        return (next(counter) - 2) % 126 + 2

    def _usb_device(self, path: str, bus: int, name: str, vid: int, pid: int, strings: dict[str, str]) -> str:
        devnum = self._devnum(bus) if "-" in name else 1
        props = {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_device",
            "DRIVER": "usb",
            "PRODUCT": f"{vid:x}/{pid:x}/1",
            "TYPE": "0/0/0",
            "BUSNUM": f"{bus:03d}",
            "DEVNUM": f"{devnum:03d}",
        }
        attrs = {
            "idVendor": f"{vid:04x}",
            "idProduct": f"{pid:04x}",
            "bcdDevice": "0001",
            **strings,
            "busnum": str(bus),
            "devnum": str(devnum),
            "devpath": name.split("-", 1)[1] if "-" in name else "0",
            "speed": "480",
            "version": " 2.00",
            "bDeviceClass": "00",
            "bMaxPacketSize0": "64",
            "bNumConfigurations": "1",
            "bConfigurationValue": "1",
            "bNumInterfaces": " 1",
        }
        return _paragraph(path, props, attrs)

    def _hubs(self, port_path: str) -> tuple[str, str]:
        """Paragraphs for the root hub and the hubs above `port_path` not yet in the testbed (each
        with its hub interface), and the sysfs path of the port's hub."""
        bus_text, chain = port_path.split("-", 1)
        bus = int(bus_text)
        parent = f"{_pci(bus)}/usb{bus}"
        text = ""
        if parent not in self._hubs_made:
            text += self._usb_device(parent, bus, f"usb{bus}", 0x1D6B, 0x0002, {"product": "EHCI Host Controller"})
            text += self._hub_interface(parent)
            self._hubs_made.add(parent)
        parts = chain.split(".")
        for depth in range(1, len(parts)):
            name = f"{bus}-{'.'.join(parts[:depth])}"
            parent = f"{parent}/{name}"
            if parent not in self._hubs_made:
                text += self._usb_device(parent, bus, name, 0x05E3, 0x0610, {"product": "USB2.0 Hub"})
                text += self._hub_interface(parent)
                self._hubs_made.add(parent)
        return text, parent

    @staticmethod
    def _interface_name(hub: str) -> str:
        """A hub's interface: `1-1:1.0`, and `1-0:1.0` for the root hub `usb1`."""
        name = os.path.basename(hub)
        return f"{name[3:]}-0:1.0" if name.startswith("usb") else f"{name}:1.0"

    def _hub_interface(self, hub: str) -> str:
        return _paragraph(
            f"{hub}/{self._interface_name(hub)}",
            {"SUBSYSTEM": "usb", "DEVTYPE": "usb_interface", "DRIVER": "hub", "INTERFACE": "9/0/0"},
            {"bInterfaceNumber": "00", "bInterfaceClass": "09", "bNumEndpoints": "01"},
        )

    def _make_power_file(self, port_path: str, hub: str) -> str:
        """The port's `disable` attribute under its hub's interface, as Linux >= 4.20 has it:
        .../1-1/1-1:1.0/1-1-port3/disable (gangd/power.py disable_attribute)."""
        number = port_path.rsplit(".", 1)[1] if "." in port_path else port_path.split("-", 1)[1]
        directory = f"{self.directory}/sys{hub}/{self._interface_name(hub)}/{os.path.basename(hub)}-port{number}"
        os.makedirs(directory, exist_ok=True)
        file = f"{directory}/disable"
        with open(file, "w") as attribute:
            attribute.write("0\n")
        return file

    def _devices(
        self, port_path: str, board: SimBoard, node: HidrawNode, manufacturer: str, product: str
    ) -> tuple[str, list[str]]:
        """The board's chain as the kernel builds it: usb_device (named by its port path) >
        usb_interface > hid > hidraw; and their sysfs paths, children first, for the removal."""
        ids = board.usb_ids
        bus = int(port_path.split("-", 1)[0])
        text, parent = self._hubs(port_path)
        usb = f"{parent}/{port_path}"
        interface = f"{usb}/{port_path}:1.0"
        hid = f"{interface}/0003:{ids.vid:04X}:{ids.pid:04X}.{next(self._hid_numbers):04X}"
        hidraw = f"{hid}/hidraw/hidraw{node.number}"
        identity = node.identity
        text += self._usb_device(
            usb,
            bus,
            port_path,
            ids.vid,
            ids.pid,
            {"manufacturer": manufacturer, "product": product, "serial": board.serial},
        )
        modalias = f"usb:v{ids.vid:04X}p{ids.pid:04X}d0001dc00dsc00dp00ic03isc00ip00in00"
        text += _paragraph(
            interface,
            {
                "SUBSYSTEM": "usb",
                "DEVTYPE": "usb_interface",
                "DRIVER": "usbhid",
                "PRODUCT": f"{ids.vid:x}/{ids.pid:x}/1",
                "INTERFACE": "3/0/0",
                "MODALIAS": modalias,
            },
            {
                "bInterfaceNumber": "00",
                "bAlternateSetting": " 0",
                "bInterfaceClass": "03",
                "bInterfaceSubClass": "00",
                "bInterfaceProtocol": "00",
                "bNumEndpoints": "02",
            },
        )
        text += _paragraph(
            hid,
            {
                "SUBSYSTEM": "hid",
                "DRIVER": "hid-generic",
                "HID_ID": f"0003:{ids.vid:08X}:{ids.pid:08X}",
                "HID_NAME": identity.name,
                "HID_PHYS": identity.phys,
                "HID_UNIQ": identity.uniq,
                "MODALIAS": f"hid:b0003g0001v{ids.vid:08X}p{ids.pid:08X}",
            },
            binary={"report_descriptor": identity.descriptor},
        )
        text += _paragraph(
            hidraw,
            {"SUBSYSTEM": "hidraw", "DEVNAME": node.devnode, "MAJOR": str(HIDRAW_MAJOR), "MINOR": str(node.number)},
            {"dev": f"{HIDRAW_MAJOR}:{node.number}"},
            node=f"hidraw{node.number}",
        )
        return text, [f"/sys{path}" for path in (hidraw, hid, interface, usb)]


__all__ = ["FOREIGN_IDS", "HidrawError", "HidrawHub", "HidrawNode", "HidrawPort", "reexec_under_wrapper"]
