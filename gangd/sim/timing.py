"""The simulator's timing model and the clock that enforces it.

The costs themselves (report interval, page program, erase, enumeration) are the physics of the
bus and the flash, in gangd/core/physics.py with their sources, shared with the product's floor.

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

from gangd.core.physics import BLOCK_SIZE, PAGE_SIZE, SECTOR_SIZE, Physics
from gangd.sim.loop import running_loop

__all__ = ["BLOCK_SIZE", "PAGE_SIZE", "SECTOR_SIZE", "BoardClock", "TimingModel"]


@dataclass(frozen=True)
class TimingModel(Physics):
    """The physics (gangd/core/physics.py) as the simulator runs them: `time_scale` scales every
    cost (0: free, unit tests)."""

    time_scale: float = 1.0

    def scaled(self, **changes) -> TimingModel:
        return dataclasses.replace(self, **changes)

    def parallel_bus(self) -> TimingModel:
        """The same model on a bus that enumerates every device at once, in no time (the
        simulator before issue 33): for tests about something else than the kernel's queue."""
        return self.scaled(port_resets=0, set_address_settle_s=0.0, control_transfers=0)


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
