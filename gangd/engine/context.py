"""What a step may use of its job: the board's handle, the step runner, the job's record and its
observers, and the little state the steps share (the option words in force, the flash groups).

The job engine (`job.py`) decides the order, the retries and the recovery; the step bodies
(`steps.py`, `secure_boot.py`) and the recovery strategies (`recoveries.py`) receive this context
and nothing else of the job. `run` is the one way to talk to the board: every call runs in the
port's own worker thread under its step's deadline, and whatever goes wrong comes back as a
domain error naming the port, the step and the deadline.

spsdk is synchronous. How its calls wait for the board depends on what the board's node is:
- **a socket** (the simulator's boards; `cooperative_node`): the call runs on trio's own thread
  inside a greenback portal (the port task's, `greenback.ensure_portal`), and where spsdk waits for the
  board the handle awaits its descriptor on trio (`FdHidDevice(cooperative=True)`): a board
  waiting costs no thread, the other jobs run meanwhile, and a step's deadline is trio's
  cancellation reaching that wait. Why: with a worker thread per call, 64 boards meant 64 threads
  passing the GIL to each other at every system call, about a quarter of gangd's CPU at N=64
  (docs/PERFORMANCE.md, "One thread for the boards' I/O").
- **a character device** (`/dev/hidrawN` on hardware): the call runs in a worker thread
  (`trio.to_thread`) through a capacity limiter of one that belongs to this port alone. A hidraw
  write blocks in the kernel until the interrupt transfer is done (usbhid_output_report ->
  usb_interrupt_msg, drivers/hid/usbhid/hid-core.c; O_NONBLOCK is not honoured there), up to
  USB_CTRL_SET_TIMEOUT (5 s) for a board that NAKs: on trio's thread that would stop every other
  board. When a step's deadline fires the thread is abandoned and its handle aborted
  (`FdHidDevice.abort` wakes the blocked poll), so a hung board costs its own port only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import greenback
import structlog
import trio
from spsdk.exceptions import SPSDKConnectionError, SPSDKError
from spsdk.mboot.error_codes import stringify_status_code
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError
from spsdk.mboot.mcuboot import McuBoot
from spsdk.sdp.exceptions import SdpCommandError, SdpConnectionError
from spsdk.sdp.sdp import SDP

from gangd.config.family import stage_of
from gangd.config.recipe import Recipe
from gangd.core.bus import root_port
from gangd.core.errors import BandwidthExhausted, BoardRemoved, CommandFailed, JobError, JobStopped, StepTimeout
from gangd.core.events import PortEvent
from gangd.core.observer import Observers
from gangd.core.results import Attempt, JobResult, StepTiming
from gangd.core.types import BoardPort, BusSlots, JobRecords, PortPower
from gangd.engine import board_ops as ops
from gangd.engine import plan as p
from gangd.engine.diagnosis import FlashDiagnostician
from gangd.engine.flash_groups import FlashGroups
from gangd.io.transport import DeviceGoneError, FdHidDevice, TransportAborted, mboot_client, sdp_client
from gangd.io.transport.fd_device import ReportTap, WrongDeviceError, cooperative_node

T = TypeVar("T")

# How long a job waits, after a transport error, for the remove event that tells "pulled" apart
# from "stopped answering".
REMOVAL_GRACE_S = 1.0
# Handles are opened with a long spsdk timeout: the step deadline, not spsdk, decides when to stop.
HANDLE_TIMEOUT_MS = 600_000


class StepContext:
    def __init__(
        self,
        port: BoardPort,
        event: PortEvent,
        recipe: Recipe,
        plan: Sequence[p.Step],
        result: JobResult,
        events: Observers,
        stopping: Callable[[], bool],
        records: JobRecords | None,
        power: PortPower | None,
        admission: BusSlots,
    ) -> None:
        self.port = port
        self.serial = event.serial  # the board this job is for (a swap shows another serial)
        self.recipe = recipe
        self.plan = plan
        self.result = result
        self.events = events
        self.stopping = stopping
        self.records = records
        self.power = power
        self.admission = admission
        self.admitted = False
        self.attempt = 1
        # Write protection gets one power cycle per job: if it survives that, it survives everything.
        self.cycled_for_protection = False
        # Bound now, once per job: every call on structlog's lazy proxy builds a new logger (the
        # configuration is not cached: it may change, in tests), about 20 times a board.
        self.log = structlog.get_logger("gangd.engine.job").bind()
        # The step lines (about 20 a board) are built only when the handler would keep them.
        self.debugging = logging.getLogger("gangd.engine.job").isEnabledFor(logging.DEBUG)
        # A job's nodes are all of one kind (the simulator's sockets, or hidraw): the first names it.
        self.cooperative = cooperative_node(event.devnode)
        # The port's worker thread, one call at a time (a blocking handle's calls only).
        self.limiter = None if self.cooperative else trio.CapacityLimiter(1)
        self._portal = False  # a cooperative job's task has its greenback portal (`_call`)
        self.device: FdHidDevice | None = None
        self.mboot: McuBoot | None = None
        # The option words in force: a diagnosis may lower their clock for the rest of the job.
        self.option_words = recipe.option_words
        self.diagnostician = FlashDiagnostician(recipe.family.name)
        # The configured memory's sector and page: planned from the facts until the board answers
        # (job.py asks after configure-memory, or after identify for internal flash).
        self.geometry = recipe.geometry
        self.flash = FlashGroups()
        # The job's progress before the running step and that step's share: a data phase tells
        # its own progress inside that share (`progress`).
        self.progress_span = (0.0, 0.0)
        self.recorder: ReportTap | None = None  # a trace of every report on the board's handles

    # --- the board's handle -------------------------------------------------------------------

    @property
    def board(self) -> McuBoot:
        """The flashloader's client, once `open` has run."""
        assert self.mboot is not None, "no flashloader session: the plan opens one first"
        return self.mboot

    def client(self, event: PortEvent) -> SDP | McuBoot:
        """spsdk's client for the stage the event names, on this board's own handle."""
        stage = stage_of(self.recipe.family, event)
        device = self._open_device(event)
        if stage == p.Stage.ROM and self.recipe.family.rom_protocol == "sdp":
            return sdp_client(device)
        return mboot_client(device)

    def _open_device(self, event: PortEvent) -> FdHidDevice:
        """This board's own handle: the exact node udev named for its port, checked against its ids."""
        self.close()
        if event.devnode is None:
            raise DeviceGoneError(f"port {event.port}: the event named no device node")
        self.device = FdHidDevice(
            event.devnode,
            timeout=HANDLE_TIMEOUT_MS,
            expected_ids=(event.vid, event.pid),
            recorder=self.recorder,
            cooperative=self.cooperative,
        )
        self.device.open()
        return self.device

    def close(self) -> None:
        if self.device is not None:
            self.device.abort()  # wakes an abandoned worker thread, if one is still blocked
            self.device.dispose()
            self.device = None
            self.mboot = None

    @property
    def configure_step(self) -> p.ConfigureMemory | None:
        return next((step for step in self.plan if isinstance(step, p.ConfigureMemory)), None)

    # --- the bus ------------------------------------------------------------------------------

    async def admit(self, event: PortEvent) -> None:
        """Room on the board's root port before it enters (or while it is in) its flashloader
        stage; a flashloader without a hidraw node was refused bandwidth by the bus."""
        if event.devnode is None and stage_of(self.recipe.family, event) == p.Stage.FLASHLOADER:
            raise BandwidthExhausted(
                self.port.path,
                self.port.step or p.StepName.OPEN,
                f"USB bandwidth exhausted on root port {root_port(self.port.path)}: the flashloader "
                f"enumerated ({event.ids}) but its HID interface was refused (no hidraw node)",
                kind="bandwidth",
            )
        if not self.admitted:
            await self.admission.enter(self.port.path, lambda: self.events.state_changed("queued"))
            self.admitted = True
            self.events.state_changed("programming")

    def may_power_cycle(self) -> bool:
        return self.recipe.recovery.power_cycle and self.power is not None and self.power.available(self.port.path)

    def release_slot(self) -> None:
        if self.admitted:
            self.admitted = False
            self.admission.leave(self.port.path)

    # --- running one step ---------------------------------------------------------------------

    async def run(
        self, name: str, deadline_s: float, fn: Callable[..., T], *args: Any, check_stopping: bool = True
    ) -> T:
        """`fn(*args)` under the step's deadline, on trio's thread or in the port's worker thread
        (module docstring); its failures as domain errors. The step's time goes to the record."""
        if check_stopping and self.stopping():
            raise JobStopped(self.port.path, name, "gangd is stopping; ended before this step")
        self.events.step_started(name)
        started = time.monotonic()
        if self.debugging:
            self.log.debug("step started", step=name, attempt=self.attempt, deadline_s=round(deadline_s, 3))
        try:
            # trio.fail_after's own scope, without its generator context manager (an eighth of
            # trio's thread at N=64, py-spy: about 20 steps a board).
            with trio.CancelScope(deadline=trio.current_time() + deadline_s) as scope:
                value = await self._call(fn, *args)
            if scope.cancelled_caught:
                raise trio.TooSlowError
        except trio.TooSlowError:
            if self.device is not None:
                self.device.abort()
            raise StepTimeout(
                self.port.path, name, f"no answer within the {deadline_s:g} s deadline", kind="timeout"
            ) from None
        except (McuBootCommandError, SdpCommandError) as exc:
            raise CommandFailed(self.port.path, name, _describe(exc), exc.error_value) from exc
        except ops.VerifyMismatch as exc:
            raise JobError(self.port.path, name, str(exc), kind="verify-mismatch") from exc
        except WrongDeviceError as exc:
            raise JobError(self.port.path, name, f"not the expected board: {exc}", kind="wrong-device") from exc
        except (
            DeviceGoneError,
            TransportAborted,
            SPSDKConnectionError,
            McuBootConnectionError,
            SdpConnectionError,
        ) as exc:
            raise await self._lost(name, exc) from exc
        except SPSDKError as exc:
            raise JobError(self.port.path, name, str(exc)) from exc
        except Exception as exc:
            self.log.warning("malformed reply", step=name, error=repr(exc))
            raise JobError(self.port.path, name, f"malformed reply from the board: {exc!r}", kind="malformed") from exc
        self.timing(name, time.monotonic() - started)
        return value

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.cooperative:
            return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True, limiter=self.limiter)
        # The task gets a portal once, for the rest of its life (the port's task: its next job
        # has it already); a portal per call (with_portal_run_sync, a greenlet each) cost about
        # 10 us, a seventh of trio's thread at N=64 (py-spy). A cancellation is met before and
        # after the call, as with a worker thread; inside, the call meets one only where it
        # waits for the board.
        if not self._portal:  # asked once a job: has_portal() looks the task up in a weak dict
            await greenback.ensure_portal()
            self._portal = True
        await trio.lowlevel.checkpoint_if_cancelled()
        value = fn(*args)
        await trio.lowlevel.checkpoint_if_cancelled()
        return value

    def timing(self, name: str, seconds: float) -> None:
        self.result.steps.append(StepTiming(name, seconds, self.attempt))
        self.events.step_finished(name, seconds)

    def note(self, error: JobError, klass: str, action: str) -> None:
        """A failure met and what was done about it: in the record, the metrics and the log."""
        self.result.attempts.append(Attempt(self.attempt, error.step, error.status, error.reason, klass, action))
        self.events.step_failed(error.step, klass, action)
        self.log.warning(
            "step failed",
            step=error.step,
            status=error.status,
            reason=error.reason,
            recovery_class=klass,
            action=action,
            attempt=self.attempt,
        )

    def progress(self) -> Callable[[int, int], None]:
        """A data phase's progress (bytes done of total, at most ~20 times a second:
        stream.Throttle) as the job's fraction, told to its observers in trio's thread without
        waiting for it: at once where the data phase runs on trio's thread, else queued from the
        port's worker thread (in order with the call's own end, which trio queues the same way)."""
        token = trio.lowlevel.current_trio_token()
        base, span = self.progress_span
        changed = self.events.progress_changed

        def told(done: int, total: int) -> None:
            if self.cooperative:
                changed(base + span * done / max(total, 1))
            else:
                token.run_sync_soon(changed, base + span * done / max(total, 1))

        return told

    async def wait_stage(self, stage: str, deadline_s: float, step: str) -> PortEvent:
        return await self.port.wait_for_stage(stage, deadline_s, step, self.serial)

    async def _lost(self, step: str, exc: Exception) -> JobError:
        """Was the board pulled out, or did it stop answering while still plugged in?"""
        with trio.move_on_after(REMOVAL_GRACE_S):
            while self.port.attached is not None:
                await self.port.next_event()
        if self.port.attached is None:
            return BoardRemoved(self.port.path, step, "the board was removed from the port")
        return JobError(self.port.path, step, f"lost contact with the board: {exc}", kind="lost-contact")


def _describe(exc: McuBootCommandError | SdpCommandError) -> str:
    if isinstance(exc, McuBootCommandError):
        return f"{exc.cmd_name} failed: {stringify_status_code(exc.error_value)}"
    return str(exc)
