"""The USB bus as it really is: each root port is a bandwidth domain, each host controller an
enumeration queue.

Enumeration: Linux enumerates one device at a time per host controller (drivers/usb/core/hub.c:
`hub_port_connect()` holds `hcd->address0_mutex` around `hub_port_init()`, the port resets and
SET_ADDRESS; the USB 2 and USB 3 root hubs of one xHCI share it). A port path names its bus (`3-2.4`
is on bus 3); which controller a bus belongs to is the host's wiring, read from sysfs on hardware
(gangd/io/topology.py) and one bus per controller in the simulator (`HostControllers`).

A flashloader's two 1016-byte interrupt endpoints reserve periodic bandwidth; about 8 of them fill
one high-speed root port's budget (docs/FLASHLOADER.md, "USB"). The next one enumerates with its
ids but Linux refuses its HID interface ("Not enough bandwidth for new device state"), so no hidraw
node appears. ROM-stage boards (SDP) do not count. gangd therefore admits boards to the flashloader
stage per domain: a board waits in its ROM (port state "queued") until its root port has room.

Room is judged from the bus as it is, not from gangd's own jobs: a root port's occupancy is every
port on it whose device is enumerated in the flashloader stage now (whoever started it: a job that
has ended but whose board has not left the flashloader yet, a board hung in its flashloader, boards
a killed gangd left there, all seen through udev and its coldplug), plus the ports whose job was
admitted and whose flashloader has not appeared yet. A port counts once whichever of the two holds.
A slot is freed when the device leaves the flashloader stage (its remove, or another stage's add
on the port) and no job holds the port's admission.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from gangd.core import scheduling

DEFAULT_BUDGET = 8  # flashloader-stage boards per high-speed root port
# One USB bus has 127 device addresses (USB 2.0 spec 9.4.6, SET_ADDRESS: a 7-bit address, 0 being
# the default address): a simulated line of N boards behind K root-port hubs on bus 1 needs N + K.
USB_ADDRESSES = 127


# One enumeration's time under its controller's address0_mutex, for a high-speed device on a hub's
# port (drivers/usb/core/hub.c hub_port_init(), the "new scheme" use_new_scheme() picks for every
# device below SuperSpeed): two port resets, each HUB_SHORT_RESET_TIME (10 ms; USB 2.0 7.1.7.5
# TDRST) and hub_port_reset()'s reset_recovery_time 10 + 40 ms ("TRSTRCY = 10 ms; plus some
# extra"), SET_ADDRESS and its msleep(10), and three control transfers (GET_DESCRIPTOR(64),
# SET_ADDRESS, GET_DESCRIPTOR(18)) at 0.5 ms each, our choice (no source gives a figure).
PORT_RESET_S = 0.010
RESET_RECOVERY_S = 0.050
PORT_RESETS = 2
SET_ADDRESS_SETTLE_S = 0.010
CONTROL_TRANSFER_S = 0.0005
CONTROL_TRANSFERS = 3
ADDRESS0_S = (
    PORT_RESETS * (PORT_RESET_S + RESET_RECOVERY_S) + SET_ADDRESS_SETTLE_S + CONTROL_TRANSFERS * CONTROL_TRANSFER_S
)


# usb_device sys_names: "1-1", "1-1.3", "3-2.4.1"; interfaces ("1-1.3:1.0") and roots ("usb1") are not ports.
PORT_PATH = re.compile(r"^\d+-\d+(\.\d+)*$")


def is_port_path(text: str) -> bool:
    """A physical USB port path as udev names the usb_device (`1-1.3`)."""
    return bool(PORT_PATH.match(text))


def root_port(path: str) -> str:
    """A port's bandwidth domain: its bus and root port (`1-1.3` -> `1-1`, `3-2.4.1` -> `3-2`)."""
    return path.split(".", 1)[0]


def usb_bus(path: str) -> str:
    """The USB bus (one root hub) a port path is on: `3-2.4` -> `3`."""
    return path.split("-", 1)[0]


@dataclass(frozen=True)
class HostControllers:
    """Which host controller each USB bus belongs to: an xHCI's USB 2 and USB 3 root hubs are two
    buses of one controller, sharing its enumeration queue. A bus not named is a controller of its
    own, named after its root hub (`usb3`)."""

    by_bus: Mapping[str, str] = field(default_factory=dict)

    def of(self, path: str) -> str:
        bus = usb_bus(path)
        return self.by_bus.get(bus, f"usb{bus}")

    def layout(self, paths: Iterable[str]) -> dict[str, dict[str, int]]:
        """Per controller, its root ports and how many of `paths` sit on each."""
        out: dict[str, Counter[str]] = {}
        for path in paths:
            out.setdefault(self.of(path), Counter())[root_port(path)] += 1
        return {controller: dict(sorted(roots.items())) for controller, roots in sorted(out.items())}


def enumeration_allowances(ports: Iterable[str], controllers: HostControllers) -> dict[str, float]:
    """Per port, how much longer than its deadline a board coming back onto it may take without
    being late: every other port of its host controller enumerating ahead of it, one at a time
    (`ADDRESS0_S` each). A board waiting its turn in the kernel's queue is not a failed board."""
    by_port = {path: controllers.of(path) for path in set(ports)}
    per_controller = Counter(by_port.values())
    return {path: (per_controller[c] - 1) * ADDRESS0_S for path, c in by_port.items()}


def topology_problem(ports: int, root_ports: int, ports_option: str, controllers: int = 1) -> str:
    """Why `ports` simulated ports cannot stand behind `root_ports` root ports spread over
    `controllers` host controllers (one bus each), or ""."""
    if root_ports > ports:
        return f"--root-ports {root_ports}: more root ports than the {ports} ports of {ports_option} (each needs one)"
    if controllers > root_ports:
        return f"--controllers {controllers}: more host controllers than the {root_ports} root ports (each needs one)"
    per_bus = -(-ports // controllers)
    roots_per_bus = -(-root_ports // controllers)
    if per_bus + roots_per_bus > USB_ADDRESSES:
        spread = f" and --controllers {controllers}" if controllers > 1 else ""
        return (
            f"{ports_option} {ports} with --root-ports {root_ports}{spread}: {per_bus + roots_per_bus} USB "
            f"devices (boards and root-port hubs) on one bus, which addresses at most {USB_ADDRESSES}"
        )
    return ""


class Admission:
    """Slots for flashloader-stage boards per root port, counted from the bus; `budget` None admits
    every board (the occupancy is still followed, for the views)."""

    def __init__(self, budget: int | None = DEFAULT_BUDGET, controllers: HostControllers | None = None) -> None:
        self.budget = budget
        self.controllers = controllers or HostControllers()
        self.holding: set[str] = set()  # finished boards whose reset the scheduling holds back now
        self.present: set[str] = set()  # ports with a device on the bus, in any stage
        self._changed = trio.Event()  # set and replaced at every change: held resets look again
        self.on_bus: set[str] = set()  # ports whose device is enumerated in the flashloader stage now
        self.admitted: set[str] = set()  # ports whose job holds an admission
        # per domain, the ports in either set: a domain's occupancy without a walk over every port
        # (it is read at every add, remove, admission and release: 200 times a board at N=64)
        self._occupying: dict[str, set[str]] = {}
        self.peak: Counter[str] = Counter()  # the most flashloader-stage ports ever at once, per domain
        self.waited: Counter[str] = Counter()  # boards that had to wait for room, per domain
        self._waiting: dict[str, deque[tuple[str, trio.Event]]] = {}  # per domain, first come first served
        self.on_change: Callable[[], None] = lambda: None  # the station's live views listen here

    # --- what the bus shows -------------------------------------------------------------------------

    def device_seen(self, path: str, flashloader: bool) -> None:
        """An add on the port: its device now is (or is not) a flashloader holding bandwidth. A
        flashloader without a HID node was refused bandwidth by the bus and holds none."""
        self.present.add(path)
        self._set(self.on_bus, path, flashloader)

    def device_left(self, path: str) -> None:
        """A remove on the port: whatever it held on the bus is free. A board that left its ROM
        has jumped: a held reset looks again."""
        if path in self.present and path not in self.on_bus:
            self.present.discard(path)
            self._notify()
        self.present.discard(path)
        self._set(self.on_bus, path, False)

    # --- the jobs -----------------------------------------------------------------------------------

    async def enter(self, path: str, waiting: Callable[[], None]) -> None:
        """Until the port's domain has room (first come, first served); `waiting` is called first
        when the board has to wait. A port already counted (its flashloader is on the bus: a board
        taken over after a restart, a retry) enters at once: it takes no new bandwidth."""
        if path in self.admitted:
            return
        domain = root_port(path)
        if not (self.budget is None or path in self.on_bus or self._room(domain)):
            ticket = trio.Event()
            queue = self._waiting.setdefault(domain, deque())
            queue.append((path, ticket))
            self.waited[domain] += 1
            waiting()
            self._notify()  # a held reset on this root port now frees a slot someone waits for
            try:
                await ticket.wait()
            except BaseException:
                if ticket.is_set():  # admitted and cancelled at once: hand the slot on
                    self.admitted.discard(path)
                    self._recount(path, domain)
                    self._wake(domain)
                else:
                    queue.remove((path, ticket))
                raise
            return  # _wake added the port to `admitted`
        self._set(self.admitted, path, True)

    def leave(self, path: str) -> None:
        """The job no longer holds the port's admission; its flashloader, if still on the bus,
        keeps counting until it leaves the flashloader stage."""
        self._set(self.admitted, path, False)

    async def reset_turn(self, path: str) -> None:
        """Until the finished board on `path` may be reset (gangd/core/scheduling.py: not while
        its controller awaits flashloaders, unless its root port waits for its slot)."""
        limit_s = scheduling.hold_limit_s(self.flashloaders_to_come(path), ADDRESS0_S)
        with trio.move_on_after(limit_s):
            try:
                while scheduling.holds_reset(
                    self.flashloaders_to_come(path), len(self._waiting.get(root_port(path), ()))
                ):
                    if path not in self.holding:
                        self.holding.add(path)
                        self.on_change()
                    await self._changed.wait()
            finally:
                if path in self.holding:
                    self.holding.discard(path)
                    self.on_change()

    def flashloaders_to_come(self, path: str) -> int:
        """On `path`'s controller, the other ports admitted to the flashloader stage whose board is
        still in its ROM: jumps to come, whose flashloaders a reboot asked for now would precede
        in the kernel's queue (gangd/core/scheduling.py)."""
        controller = self.controllers.of(path)
        ahead = (self.admitted & self.present) - self.on_bus
        return sum(1 for p in ahead if p != path and self.controllers.of(p) == controller)

    # --- counting -----------------------------------------------------------------------------------

    def occupancy(self, domain: str) -> int:
        return len(self._occupying.get(domain, ()))

    def _recount(self, path: str, domain: str) -> None:
        members = self._occupying.setdefault(domain, set())
        if path in self.on_bus or path in self.admitted:
            members.add(path)
        else:
            members.discard(path)

    def _room(self, domain: str) -> bool:
        return self.budget is None or self.occupancy(domain) < self.budget

    def _set(self, ports: set[str], path: str, present: bool) -> None:
        if (path in ports) == present:
            return
        if present:
            ports.add(path)
        else:
            ports.discard(path)
        domain = root_port(path)
        self._recount(path, domain)
        self.peak[domain] = max(self.peak[domain], self.occupancy(domain))
        self._wake(domain)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.on_change()

    def _wake(self, domain: str) -> None:
        queue = self._waiting.get(domain)
        while queue and self._room(domain):
            path, ticket = queue.popleft()
            self.admitted.add(path)
            self._recount(path, domain)
            self.peak[domain] = max(self.peak[domain], self.occupancy(domain))
            ticket.set()

    def status(self, ports: Iterable[str] = ()) -> dict[str, dict[str, int | None]]:
        """Per domain of `ports` and of every port seen so far: its budget, the flashloader-stage
        ports counted now, and the boards queued for room."""
        seen = {root_port(p) for p in [*ports, *self.on_bus, *self.admitted]}
        domains = sorted(seen | set(self.peak) | set(self._waiting))
        return {
            domain: {
                "budget": self.budget,
                "in_use": self.occupancy(domain),
                "queued": len(self._waiting.get(domain, ())),
            }
            for domain in domains
        }
