"""The simulator's timing model and the clock that enforces it.

Defaults come from datasheets and USB descriptors:
- a high-speed HID interrupt endpoint with bInterval 3 moves one report every 2**(3-1) microframes
  of 125 µs = 0.5 ms, so ~1 KiB reports give about 2 MB/s;
- a command round trip costs at least 1 ms: one OUT report and one IN report;
- serial NOR: 0.4 ms per 256-byte page program, 45 ms per 4 KiB sector erase, 150 ms per 64 KiB
  block erase, 40 s for a whole chip;
- re-enumeration after a jump or a reset takes 0.5 s before the new device is usable when no other
  device enumerates on its host controller: the board's own part (its boot and USB start, every
  board in parallel) and the kernel's part, which is serialised per host controller (below).

The kernel's part: Linux's hub driver (drivers/usb/core/hub.c, `hub_port_connect()`) holds the host
controller's `hcd->address0_mutex` around `hub_port_init()`, and `usb_reset_and_verify_device()` (a
USB reset) takes it too, so on one controller one device at a time goes from its port reset to its
new address. For a high-speed device on a hub's port, `hub_port_init()` uses the "new scheme"
(`use_new_scheme()`, only SuperSpeed devices are excluded): port reset, GET_DESCRIPTOR(64) at
address 0, a second port reset, SET_ADDRESS, `msleep(10)` ("let SET_ADDRESS settle"), then the
18-byte device descriptor. Each reset is `hub_port_reset()`: the reset signalled for
`HUB_SHORT_RESET_TIME` (10 ms on a hub's port; USB 2.0 7.1.7.5 TDRST) and then
`reset_recovery_time = 10 + 40` ms ("TRSTRCY = 10 ms; plus some extra"). `address0_s()` adds them up;
the simulator's hub (enumeration.py) queues each controller's enumerations through it.

`BoardClock` charges costs against an absolute deadline instead of sleeping each cost on its own,
so the overshoot of one sleep is repaid by the next and a long transfer lands within a fraction of
a millisecond of the modelled time. A time scale of 0 makes every cost free (unit tests).

What the model promises, and at what grain: every report a board sends leaves at its modelled
time, one report interval (0.5 ms) after the one before (`charge` before each send), and so does
every write a host makes to an emulated hidraw node (its write returns when the board has taken
the report). What the host cannot observe is not slept one by one: reports a board takes from a
socket and pages it programs are owed (`owe`) and repaid before its next reply, the board running
at most `AHEAD_MAX_S` ahead in between; a board leaving the bus repays them first (`settle`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

from gangd.core import bus
from gangd.sim.loop import running_loop

SECTOR_SIZE = 4 * 1024
BLOCK_SIZE = 64 * 1024
PAGE_SIZE = 256


@dataclass(frozen=True)
class TimingModel:
    time_scale: float = 1.0
    report_interval_s: float = 0.0005
    page_program_s: float = 0.0004
    sector_erase_s: float = 0.045
    block_erase_s: float = 0.150
    chip_erase_s: float = 40.0
    # An uncontended re-enumeration, the board's part and the kernel's (`address0_s`) together; the
    # board's part is what is left of it (`device_boot_s`).
    reenumeration_s: float = 0.5
    # The kernel's part, per enumeration, inside the controller's address0_mutex (hub.c, see above).
    # (the kernel's figures and their sources: gangd/core/bus.py)
    port_reset_s: float = bus.PORT_RESET_S  # HUB_SHORT_RESET_TIME: a hub's port (a root port: 60 ms)
    reset_recovery_s: float = bus.RESET_RECOVERY_S  # hub_port_reset(): TRSTRCY 10 ms + the kernel's 40 ms
    port_resets: int = bus.PORT_RESETS  # hub_port_init()'s new scheme resets twice (around GET_DESCRIPTOR(64))
    set_address_settle_s: float = bus.SET_ADDRESS_SETTLE_S  # hub_port_init(): msleep(10) after SET_ADDRESS
    # GET_DESCRIPTOR(64), SET_ADDRESS, GET_DESCRIPTOR(18): 0.5 ms each, our choice (a setup, a data
    # and a status stage in their own 125 µs microframes plus the host's turnaround)
    control_transfer_s: float = bus.CONTROL_TRANSFER_S
    control_transfers: int = bus.CONTROL_TRANSFERS
    fuse_program_s: float = 0.005  # one OTP word, including the controller's reload
    # Multiplies every flash program/erase cost; the "slow flash" fault raises it per board.
    flash_slowdown: float = 1.0

    def scaled(self, **changes) -> TimingModel:
        return dataclasses.replace(self, **changes)

    # --- enumeration ---------------------------------------------------------------------------

    def address0_s(self) -> float:
        """One enumeration's time inside its host controller's address0_mutex (hub.c
        hub_port_init(), new scheme): no other device of the controller enumerates meanwhile."""
        resets = self.port_resets * (self.port_reset_s + self.reset_recovery_s)
        return resets + self.set_address_settle_s + self.control_transfers * self.control_transfer_s

    def parallel_bus(self) -> TimingModel:
        """The same model on a bus that enumerates every device at once, in no time (the
        simulator before issue 33): for tests about something else than the kernel's queue."""
        return self.scaled(port_resets=0, set_address_settle_s=0.0, control_transfers=0)

    def device_boot_s(self) -> float:
        """The board's own part of a re-enumeration (its boot and USB start, in parallel with every
        other board's): the uncontended re-enumeration less the kernel's part, never below 0."""
        return max(0.0, self.reenumeration_s - self.address0_s())

    # --- what each operation costs, in model seconds (before time_scale) ---------------------
    # A command is a report out and a report in, so a round trip is 2 report intervals = 1 ms.

    def reports(self, payload_bytes: int, packet_size: int) -> int:
        """How many packets a data phase of `payload_bytes` needs."""
        return -(-payload_bytes // packet_size)

    def transfer_s(self, payload_bytes: int, packet_size: int) -> float:
        return self.reports(payload_bytes, packet_size) * self.report_interval_s

    def round_trip_s(self) -> float:
        return 2 * self.report_interval_s

    def pages_programmed(self, address: int, length: int) -> int:
        """NOR pages a write programs: the flashloader collects whole pages (padding the last one)
        and programs each once (mcu-boot flexspi_nor_mem_write / flush)."""
        if length <= 0:
            return 0
        return (address + length - 1) // PAGE_SIZE - address // PAGE_SIZE + 1

    def erase_plan_s(self, address: int, length: int) -> float:
        """Erase the way a NOR driver does: 64 KiB blocks where aligned, 4 KiB sectors elsewhere."""
        cost = 0.0
        end = address + length
        while address < end:
            if address % BLOCK_SIZE == 0 and end - address >= BLOCK_SIZE:
                cost += self.block_erase_s
                address += BLOCK_SIZE
            else:
                cost += self.sector_erase_s
                address += SECTOR_SIZE
        return cost * self.flash_slowdown

    # --- whole commands as the simulator charges them; tests and the benchmark use these -------

    def write_memory_s(self, address: int, length: int, packet_size: int, to_flash: bool) -> float:
        """Command, first response, data packets, final response; flash programmed page by page."""
        cost = (3 + self.reports(length, packet_size)) * self.report_interval_s
        if to_flash:
            cost += self.pages_programmed(address, length) * self.page_program_s * self.flash_slowdown
        return cost

    def read_memory_s(self, length: int, packet_size: int) -> float:
        return (3 + self.reports(length, packet_size)) * self.report_interval_s

    def erase_region_s(self, address: int, length: int) -> float:
        return self.round_trip_s() + self.erase_plan_s(address, length)


# A board whose deadline passed by less than this was busy and merely woke late (a sleep's
# overshoot), so the lateness is repaid; a longer gap after a wait for the host was idle time.
IDLE_SLACK_S = 0.002
# How long a loaded machine can keep a board's thread off the CPU (up to 160 ms was measured with
# `stress-ng --cpu 2` on 2 cores): lateness up to this with no wait for the host since the last
# charge is the board's own, and is repaid, as a real board's time does not stop with the host's
# CPU. Longer gaps restart the deadline (a wait that no link reported).
STARVED_MAX_S = 0.25
SHORT_SLEEP_S = 0.02
# How far `owe` lets a board run ahead of its deadline before it sleeps. The host cannot see the
# lead: a socket takes the host's reports without waiting for the board (its buffer holds about 90
# reports, 45 ms of them), and every reply the host waits for is sent after `charge`, which sleeps
# the whole debt off. Where the buffer is full, the host's blocked send is let go up to this much
# earlier than at a report's pace, and waits that much longer for the next reply. The 20 ms is our
# choice, not a device's figure (no source gives one): small against the socket's 45 ms, large
# against a sleep's cost.
AHEAD_MAX_S = 0.02


class BoardClock:
    """Charges modelled costs to one board, sleeping against an absolute deadline.

    Costs are kept in model seconds and multiplied into wall time by `time_scale`. When the board
    has been idle (its links call `idle()` before they wait for the host), its deadline restarts
    from when the host's report arrived, where the link knows it (a socket's stamp: links.py
    `HidSocket`), else from now, so idle time is never saved up to run faster later; without an
    arrival, lateness under `IDLE_SLACK_S` is a sleep's overshoot and is repaid by the next sleep.
    Lateness without a wait for the host is the board's thread kept off the CPU, and is repaid too
    (up to `STARVED_MAX_S`): a loaded machine otherwise added every such delay to a transfer (a
    1 MiB write took 2.5-3.9 s for the model's 2.16 s under stress-ng).
    """

    def __init__(self, model: TimingModel, stop: threading.Event | None = None) -> None:
        self.model = model
        self._deadline = time.monotonic()
        self._stop = stop or threading.Event()
        # Whether the next charge ends a wait for the host (then when the host's report arrived
        # matters: `owe`'s `arrived`). An attribute, not a property: looked at per report.
        self.idling = True  # nothing is owed for the time before the first charge
        self.charged_s = 0.0  # total model seconds charged: what the model says the board spent

    def idle(self) -> None:
        """The board waits for the host (or is away): the time until its next charge is not owed."""
        self.idling = True

    def _advance(self, model_seconds: float, arrived: float | None = None) -> float:
        """Move the deadline by a cost; return how far it now lies ahead of the wall clock.
        `arrived`: when the host's report that ends an idle wait reached the board (monotonic)."""
        self.charged_s += model_seconds
        if self.model.time_scale <= 0:
            return 0.0
        now = time.monotonic()
        if self.idling and arrived is not None:
            # The board had the report when it arrived, not when the simulator's thread, busy with
            # other boards, got to it: a real board's CPU is its own. Never before its own last
            # deadline (it was busy until then), never in the future, nor further back than a
            # thread is kept off the CPU (STARVED_MAX_S).
            self._deadline = max(self._deadline, min(now, max(arrived, now - STARVED_MAX_S)))
        else:
            late = now - self._deadline
            if late > IDLE_SLACK_S and (self.idling or late > STARVED_MAX_S):
                self._deadline = now
        self.idling = False
        self._deadline += model_seconds * self.model.time_scale
        return self._deadline - now

    def charge(self, model_seconds: float) -> None:
        """Charge a cost and return at its deadline: call it before anything the host can see
        (a report sent, a write acknowledged)."""
        if model_seconds > 0:
            self._sleep(self._advance(model_seconds))

    def owe(self, model_seconds: float, arrived: float | None = None) -> None:
        """Charge a cost the host cannot see yet, sleeping only once the board is more than
        `AHEAD_MAX_S` ahead of the wall clock; the next `charge` or `settle` repays the rest.

        For the reports a board takes from a socket (the host's send returned when the report
        was queued, so the board's pace shows only in its next reply) and the pages it programs
        (seen only in the reply to the command). The deadline arithmetic is `charge`'s, so the
        replies go out at the same modelled times; only the sleeps are fewer. `arrived`: when
        the report reached the board, where the link knows it (`_advance`)."""
        if model_seconds > 0:
            delay = self._advance(model_seconds, arrived)
            if delay > AHEAD_MAX_S:
                self._sleep(delay)

    def settle(self) -> None:
        """Sleep off whatever `owe` left: before anything the host can see that was not charged."""
        if self.model.time_scale > 0:
            self._sleep(self._deadline - time.monotonic())

    def _sleep(self, delay: float) -> None:
        if delay <= 0:
            return
        loop = running_loop()
        if loop is not None:
            loop.block(timeout=delay, stop=self._stop)  # a timer on the loop that runs every board
        elif delay > SHORT_SLEEP_S:
            self._stop.wait(delay)  # long waits end at once when the board is unplugged
        else:
            time.sleep(delay)  # a report's worth: cheaper than an Event wait, and over soon anyway
