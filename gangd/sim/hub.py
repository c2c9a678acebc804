"""A simulated USB hub: virtual ports that carry boards and emit the same PortEvents as udev.

Each attached board is reachable at a device node of its own: a listening SOCK_SEQPACKET unix
socket named like the kernel's nodes (`<dir>/hidraw7`). Opening it (connect) gives one handle;
every message on it is one HID report, so gangd's file-descriptor transport runs unchanged on a
socket here and on `/dev/hidrawN` on hardware. Like the kernel, the hub hands out a new node
number at every enumeration, so a board that jumps or resets comes back under a new devnode on the
same port path. Every board of a hub runs on one thread, the hub's `BoardLoop` (loop.py).

An `Operator` plugs fresh boards into ports and replaces a finished one after a delay.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import select
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable

from gangd.config.family import FamilyInfo
from gangd.core.bus import DEFAULT_BUDGET, HostControllers, root_port
from gangd.core.events import ADD, REMOVE, PortEvent
from gangd.sim.board import FLASHLOADER, ROM, BoardSpec, LeaveStage, SimBoard, Unplugged
from gangd.sim.enumeration import EnumerationQueue
from gangd.sim.faults import FaultPlan
from gangd.sim.flashloader import FlashloaderEngine
from gangd.sim.links import HidSocket, LinkClosed, MbootHidLink, SdpHidLink
from gangd.sim.loop import BoardLoop, Task, running_loop, wait_event
from gangd.sim.rom import RomEngine
from gangd.sim.timing import TimingModel

log = logging.getLogger(__name__)

_ACCEPT_POLL_S = 0.05
# Device nodes live on a memory filesystem, as the kernel's do (devtmpfs): a socket node made and
# removed on a disk filesystem cost about 0.1 ms of CPU per enumeration here (ext4), three per
# board, against about 15 µs on tmpfs.
_NODE_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK) else None


def default_port_paths(count: int, root_ports: int = 1, controllers: int = 1) -> list[str]:
    """`count` hub ports spread evenly over `root_ports` root ports, and those over `controllers`
    host controllers, one bus each (`B-R.N`, bus 1 first): each root port is one bandwidth domain,
    each controller one enumeration queue."""
    per = -(-count // max(1, root_ports))
    roots_per_bus = -(-max(1, root_ports) // max(1, controllers))
    paths = []
    for i in range(count):
        root = i // per
        paths.append(f"{root // roots_per_bus + 1}-{root % roots_per_bus + 1}.{i % per + 1}")
    return paths


def serve_hid_connection(board: SimBoard, sock: socket.socket) -> None:
    """Run the board's current stage on one opened handle until it closes or the board leaves."""
    serve_hid(board, HidSocket(sock, board.clock, board.unplugged))


def serve_hid(board: SimBoard, hid) -> None:
    """Run the board's current stage on a report channel (`recv_report` / `send_report`: a socket
    here, an emulated hidraw node in `hidraw.py`) until it closes or the board leaves."""
    replay = getattr(board, "serve_replay", None)  # a board replayed from a trace (replay.py)
    if replay is not None:
        replay(hid)
    elif board.stage == ROM and board.family.rom_protocol == "sdp":
        RomEngine(board, SdpHidLink(hid)).serve()
    else:
        FlashloaderEngine(board, MbootHidLink(hid)).serve()


class SimPort:
    # Its boards run as tasks on the hub's BoardLoop, one thread for every port's board (loop.py
    # says why); hidraw.py's ports, whose nodes wait on conditions, keep a thread per board.
    threaded = False

    def __init__(self, hub: SimHub, path: str, faults: FaultPlan) -> None:
        self.hub = hub
        self.path = path
        self.faults = faults
        self.board: SimBoard | None = None
        self.devnode: str | None = None
        self.boards_seen = 0
        self._thread: threading.Thread | None = None
        self._task: Task | None = None
        self._on_bus = threading.Event()
        # Every enumeration on this port, counted, and told to whoever waits on `enumerated`.
        self.enumerations = 0
        self.enumerated = threading.Condition()
        self.cycling = False
        self._unpowered: SimBoard | None = None  # the board in a port whose power is off
        self._lock = threading.Lock()

    def plug(self, board: SimBoard, wait: bool = True) -> None:
        """`wait`: return once the board has enumerated (else see `wait_enumerated`)."""
        with self._lock:
            if self.board is not None:
                raise RuntimeError(f"port {self.path} already holds board {self.board.serial}")
            self.board = board
            board.power_up()
            self.boards_seen += 1
            self._on_bus = threading.Event()
            if self.threaded:
                self._task = None
                self._thread = threading.Thread(
                    target=self._carry, args=(board,), name=f"sim-port-{self.path}", daemon=True
                )
                self._thread.start()
            else:
                self._thread = None
                self._task = self.hub.loop.spawn(self._carry, board)
        # Like a real plug-in as seen from the host: done once the board has enumerated, so a
        # board plugged before gangd starts is there for its coldplug scan. (Not on the loop's own
        # thread, a subscriber's callback: the board cannot enumerate while its thread waits.)
        if wait and not self.hub.on_loop_thread():
            self.wait_enumerated()

    def wait_enumerated(self, timeout_s: float = 5.0) -> None:
        self._on_bus.wait(timeout_s)

    def unplug(self, wait: bool = True) -> SimBoard | None:
        with self._lock:
            board, thread, task = self.board, self._thread, self._task
        if board is None:
            return None
        board.unplugged.set()
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()
        if wait and task is not None and not self.hub.on_loop_thread():
            task.done.wait()
        return board

    def power_cycle(self) -> None:
        """Cut the port's power and restore it: the same board boots into its ROM afresh.

        The port is marked while its power is off, so the operator does not put another board
        into it in between (Operator._replace waits for the cycle to end)."""
        self.power_off()
        self.power_on()

    def power_off(self) -> SimBoard | None:
        """Cut the port's power: its board leaves the bus but stays in the port, unpowered, until
        power_on (the two halves of a power cycle, for a hub whose ports are switched from outside)."""
        with self._lock:
            self.cycling = True
        board = self.unplug()
        with self._lock:
            self._unpowered = board
            self.cycling = board is not None
        return board

    def power_on(self) -> None:
        """Restore the port's power: the board it held boots into its ROM afresh."""
        with self._lock:
            board, self._unpowered = self._unpowered, None
        try:
            if board is None:
                return
            board.power_cycles += 1
            with self._lock:
                self.boards_seen -= 1  # the same board, not a new one
            self.plug(board)
        finally:
            with self._lock:
                self.cycling = False

    def _carry(self, board: SimBoard) -> None:
        """The board's life on this port: enumerate, serve, leave, re-enumerate, until unplugged."""
        board.clock.idle()  # (re)plugged: nothing is owed for the time it was away
        model = board.clock.model
        try:
            while self._await_turn(board):
                if not self.hub._take_slot(self.path, board):
                    self._refused(board)
                    break
                leave = self._enumerated(board)
                if board.unplugged.is_set() or leave is None:
                    break
                # The board's own part of the gap between leaving the bus and re-appearing (its
                # boot and USB start); the kernel's part is its turn in the controller's queue. A
                # gap a trace recorded (replay.py) held both, uncontended.
                if leave.delay_s is None:
                    gap = model.device_boot_s() * model.time_scale
                else:
                    gap = max(0.0, leave.delay_s - model.address0_s() * model.time_scale)
                wait_event(board.unplugged, gap)
                board.clock.idle()  # away from the bus: nothing is owed for it
                if not leave.reappear:
                    wait_event(board.unplugged)
                    break
                board.enter(leave.next_stage)
        except Exception as exc:  # a simulator bug: keep the hub alive and make it visible
            log.exception("simulated board %s on %s crashed", board.serial, self.path)
            self.hub.errors.append(exc)
            board.unplugged.set()
        finally:
            self.hub._free_slot(self.path)
            with self._lock:
                self.board = None
                self.devnode = None

    def _await_turn(self, board: SimBoard) -> bool:
        """Wait for the port's host controller to enumerate the board (its reset to its address,
        one device at a time per controller: enumeration.py); False if it was unplugged meanwhile."""
        model = board.clock.model
        controller = self.hub.controllers.of(self.path)
        window = self.hub.enumeration.enumerate(
            controller, self.path, model.address0_s() * model.time_scale, board.unplugged
        )
        return window is not None

    def _refused(self, board: SimBoard) -> None:
        """A flashloader over its root port's bandwidth budget: Linux enumerates the usb_device
        with its ids but refuses the HID interface ("Not enough bandwidth for new device state"),
        so no hidraw node appears, until it is re-plugged (or power-cycled) once a slot is free."""
        ids = board.usb_ids
        log.warning(
            "port %s: not enough bandwidth on root port %s for the flashloader", self.path, root_port(self.path)
        )
        self.hub._emit(PortEvent(ADD, self.path, ids.vid, ids.pid, board.serial, None))
        self._on_bus.set()
        wait_event(board.unplugged)
        self.hub._emit(PortEvent(REMOVE, self.path, ids.vid, ids.pid, board.serial, None))

    def _enumerated(self, board: SimBoard) -> LeaveStage | None:
        listener, devnode = self.hub._new_devnode()
        self.devnode = devnode
        ids = board.usb_ids
        if board.first_enumerated_at is None:
            board.first_enumerated_at = time.monotonic()
        self.hub._emit(PortEvent(ADD, self.path, ids.vid, ids.pid, board.serial, devnode))
        self._on_bus.set()
        with self.enumerated:
            self.enumerations += 1
            self.enumerated.notify_all()
        try:
            self._serve_handles(board, listener)
        except LeaveStage as leave:
            board.clock.settle()  # it leaves the bus at its modelled time, owing nothing
            return leave
        except Unplugged:
            board.clock.settle()  # a fault's unplug comes when the model has the board there
            board.unplugged.set()
        finally:
            listener.close()
            try:
                os.unlink(devnode)
            except FileNotFoundError:
                pass
            self.devnode = None  # off the bus until (unless) it enumerates again
            self.hub._emit(PortEvent(REMOVE, self.path, ids.vid, ids.pid, board.serial, devnode))
        return None

    def _serve_handles(self, board: SimBoard, listener: socket.socket) -> None:
        loop = running_loop()
        while not board.unplugged.is_set():
            board.clock.idle()  # waiting for a host to open the device
            if loop is not None:
                if not loop.block(listener.fileno(), stop=board.unplugged):
                    continue
            elif not select.select([listener], [], [], _ACCEPT_POLL_S)[0]:
                continue
            conn, _ = listener.accept()
            try:
                serve_hid_connection(board, conn)
            except LinkClosed:
                pass  # the host closed its handle; the board stays attached
            finally:
                conn.close()


class SimHub:
    port_type: type[SimPort] = SimPort  # how a port puts its board on the bus (hidraw.py has another)

    def __init__(
        self,
        ports: int | list[str],
        port_faults: dict[str, list[str]] | None = None,
        seed: int | None = None,
        directory: str | None = None,
        root_ports: int = 1,
        flashloader_budget: int | None = DEFAULT_BUDGET,
        controllers: int = 1,
    ) -> None:
        paths = default_port_paths(ports, root_ports, controllers) if isinstance(ports, int) else list(ports)
        # One simulated bus per host controller; each enumerates its devices one at a time.
        self.controllers = HostControllers()
        self.enumeration = EnumerationQueue()
        # Each root port's periodic bandwidth: flashloader-stage boards it carries at once.
        self.flashloader_budget = flashloader_budget
        self.in_flashloader: Counter[str] = Counter()  # per root port, now
        self.peak_flashloaders: Counter[str] = Counter()  # per root port, the most ever at once
        self._holding: set[str] = set()  # ports whose board holds a slot
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="gangd-sim-", dir=_NODE_ROOT)
        port_faults = port_faults or {}
        self.ports = {p: self.port_type(self, p, FaultPlan(port_faults.get(p, ()), seed)) for p in paths}
        self._numbers = itertools.count()
        self._subscribers: list[Callable[[PortEvent], None]] = []
        self._lock = threading.Lock()
        self.events: list[PortEvent] = []
        self.errors: list[BaseException] = []  # simulator crashes; tests assert there are none
        self.boards: dict[str, SimBoard] = {}  # every board ever plugged in, by serial
        self._loop: BoardLoop | None = None

    # --- the thread the boards run on -----------------------------------------------------------

    @property
    def loop(self) -> BoardLoop:
        """The loop every board of this hub runs on (started with the first board)."""
        with self._lock:
            if self._loop is None:
                self._loop = BoardLoop(name=f"sim-hub-{os.path.basename(self.directory)}")
            return self._loop

    def on_loop_thread(self) -> bool:
        return self._loop is not None and self._loop.on_loop_thread()

    # --- events -------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[PortEvent], None]) -> None:
        """Call `callback` for every event; past events are not replayed. It is called on the
        thread that runs the boards (the hub's loop, or a hidraw port's thread), so it must not
        block: every board waits while it runs."""
        with self._lock:
            self._subscribers.append(callback)

    def _take_slot(self, path: str, board: SimBoard) -> bool:
        """Room for this enumeration on the port's root port? ROM-stage boards take none."""
        if board.stage != FLASHLOADER or board.family.rom_protocol != "sdp":
            return True
        domain = root_port(path)
        with self._lock:
            if self.flashloader_budget is not None and self.in_flashloader[domain] >= self.flashloader_budget:
                return False
            self._holding.add(path)
            self.in_flashloader[domain] += 1
            self.peak_flashloaders[domain] = max(self.peak_flashloaders[domain], self.in_flashloader[domain])
            return True

    def _free_slot(self, path: str) -> None:
        with self._lock:
            if path in self._holding:
                self._holding.discard(path)
                self.in_flashloader[root_port(path)] -= 1

    def _emit(self, event: PortEvent) -> None:
        if event.action == REMOVE:
            self._free_slot(event.port)  # off the bus: its reservation is released
        with self._lock:
            self.events.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not kill the board
                log.exception("hub subscriber failed on %s", event)

    def _new_devnode(self) -> tuple[socket.socket, str]:
        path = os.path.join(self.directory, f"hidraw{next(self._numbers)}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        listener.listen(4)
        return listener, path

    # --- boards -------------------------------------------------------------------------------

    def port(self, path: str) -> SimPort:
        try:
            return self.ports[path]
        except KeyError:
            raise KeyError(f"the simulated hub has no port {path!r}") from None

    def plug(self, path: str, board: SimBoard | BoardSpec, wait: bool = True) -> SimBoard:
        port = self.port(path)
        if isinstance(board, BoardSpec):
            board = SimBoard(board, port_faults=port.faults)
        self.boards.setdefault(board.serial, board)
        port.plug(board, wait)
        return board

    def unplug(self, path: str) -> SimBoard | None:
        return self.port(path).unplug()

    def board(self, path: str) -> SimBoard | None:
        return self.port(path).board

    def close(self) -> None:
        for port in self.ports.values():
            port.unplug()
        if self._loop is not None:
            self._loop.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SimHub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BoardFactory:
    """Fresh boards off the reel: serial numbers in sequence, unique ids from a seeded generator."""

    def __init__(
        self,
        family: FamilyInfo,
        timing: TimingModel | None = None,
        seed: int | None = 0,
        faults: Callable[[int], tuple[str, ...]] | tuple[str, ...] = (),
        stage: str = ROM,
        **spec_fields,
    ) -> None:
        self.family = family
        self.timing = timing or TimingModel()
        self.seed = seed
        self._rng = random.Random(seed)
        self._faults = faults
        self._count = itertools.count(1)
        self._stage = stage
        self._spec_fields = spec_fields
        self._lock = threading.Lock()

    def __call__(self) -> BoardSpec:
        with self._lock:
            n = next(self._count)
            uuid = self._rng.getrandbits(64)
        faults = self._faults(n) if callable(self._faults) else tuple(self._faults)
        return BoardSpec(
            family=self.family,
            serial=f"SIM{n:06d}",
            uuid=uuid,
            stage=self._stage,
            faults=faults,
            seed=None if self.seed is None else self.seed * 1_000_003 + n,
            timing=self.timing,
            **self._spec_fields,
        )


class Operator:
    """A line operator: fills empty ports and replaces a finished board after `delay_s`.

    With `retest` > 0, a board that failed is, with that probability, put aside and tried again in
    another port instead of being scrapped: "swap boards, swap back", which is how a line finds
    out whether a failure follows the board or the port.
    """

    def __init__(
        self,
        hub: SimHub,
        make_board: Callable[[], BoardSpec],
        delay_s: float = 2.0,
        limit: int | None = None,
        retest: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.hub = hub
        self._make_board = make_board
        self.delay_s = delay_s
        self.limit = limit  # fresh boards in all; after that, finished boards are taken out only
        self.retest = retest
        self._rng = random.Random(seed)
        self.made = 0
        self.replaced = 0
        self.retested = 0
        self._set_aside: list[tuple[SimBoard, str]] = []  # (failed board, the port it failed in)
        self._stopped = threading.Event()
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def make_board(self) -> BoardSpec | None:
        with self._lock:
            if self.limit is not None and self.made >= self.limit:
                return None
            self.made += 1
        return self._make_board()

    def populate(self) -> None:
        for path, port in self.hub.ports.items():
            if port.board is None and (spec := self.make_board()) is not None:
                self.hub.plug(path, spec)

    def finished(self, port: str, result: str | None = None) -> None:
        """Called when gangd reports a board on `port` done (pass or fail)."""
        if self._stopped.is_set():
            return
        timer = threading.Timer(self.delay_s, self._replace, args=(port, result))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _replace(self, port: str, result: str | None = None) -> None:
        if self._stopped.is_set():
            return
        if self.hub.port(port).cycling:  # its power is being cycled: come back when it is on
            self.finished(port, result)
            return
        if result == "removed" and self.hub.port(port).board is not None:
            return  # gangd saw it leave, but a board is in the port again (replugged): leave it
        board = self.hub.unplug(port)
        with self._lock:
            if board is not None and result == "failed" and self._rng.random() < self.retest:
                self._set_aside.append((board, port))
            candidate = next((item for item in self._set_aside if item[1] != port), None)
            if candidate is not None:
                self._set_aside.remove(candidate)
                self.retested += 1
        if self._stopped.is_set():
            return
        if candidate is not None:
            self.hub.plug(port, candidate[0])
        elif (spec := self.make_board()) is not None:
            self.replaced += 1
            self.hub.plug(port, spec)

    @property
    def done(self) -> bool:
        """Every fresh board made and every port empty (boards still set aside are scrapped)."""
        with self._lock:
            exhausted = self.limit is not None and self.made >= self.limit
        return exhausted and all(port.board is None for port in self.hub.ports.values())

    def replug_silent(self, grace_s: float) -> list[str]:
        """Replug the boards that sit in a port without showing on the bus (a flashloader that
        never came up when gangd died): what an operator does with a port whose board has gone
        dark. A board that is merely re-enumerating (a jump or a reset a moment ago) is given
        `grace_s` to come back first; call this while no gangd runs, or a board its jobs have just
        reset looks dark too, and a power cycle would make it a new board to program. Returns
        the ports replugged."""
        dark = {
            path: (port.board, port.enumerations)
            for path, port in self.hub.ports.items()
            if port.board is not None and port.devnode is None and not port.cycling
        }
        deadline = time.monotonic() + grace_s
        replugged = []
        for path, (board, seen) in dark.items():
            port = self.hub.port(path)

            def back(port: SimPort = port, board: SimBoard | None = board, seen: int = seen) -> bool:
                return port.board is not board or port.enumerations != seen

            with port.enumerated:
                port.enumerated.wait_for(back, timeout=max(0.0, deadline - time.monotonic()))
            if port.board is board and port.enumerations == seen and port.devnode is None:
                port.power_cycle()
                replugged.append(path)
        return replugged

    def stop(self) -> None:
        self._stopped.set()
        for timer in self._timers:
            timer.cancel()


__all__ = [
    "FLASHLOADER",
    "ROM",
    "BoardFactory",
    "Operator",
    "SimHub",
    "SimPort",
    "default_port_paths",
    "serve_hid",
    "serve_hid_connection",
]
