"""One board's provisioning job: the recipe's steps, each under a deadline, on its own handle.

spsdk is synchronous, so every call to the board runs in a worker thread (`trio.to_thread`),
through a capacity limiter of one that belongs to this port alone: no global limit, no shared
handle, no lock across ports. When a step's deadline fires, the thread is abandoned and its handle
aborted (`FdHidDevice.abort` wakes the blocked poll), so a hung board costs its own port only and
its job fails at once, naming the port and the step.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio
from spsdk.exceptions import SPSDKConnectionError, SPSDKError
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError
from spsdk.mboot.error_codes import stringify_status_code
from spsdk.sdp.exceptions import SdpCommandError, SdpConnectionError

from .errors import BoardRemoved, CommandFailed, JobError, JobStopped, StepTimeout
from .hotplug.events import PortEvent
from .port import FLASHLOADER, ROM, Port, stage_of
from .recipe import Recipe
from .transport import DeviceGoneError, FdHidDevice, TransportAborted, mboot_client, sdp_client
from .transport.fd_device import WrongDeviceError

_job_ids = itertools.count(1)

# How long a job waits, after a transport error, for the remove event that tells "pulled" apart
# from "stopped answering".
REMOVAL_GRACE_S = 1.0
# Handles are opened with a long spsdk timeout: the step deadline, not spsdk, decides when to stop.
HANDLE_TIMEOUT_MS = 600_000


@dataclass
class StepTiming:
    name: str
    seconds: float


@dataclass
class JobResult:
    job_id: int
    port: str
    label: str
    serial: str | None
    result: str  # success | failed | removed | stopped
    step: str | None = None
    reason: str | None = None
    status: int | None = None
    started: float = 0.0
    duration_s: float = 0.0
    steps: list[StepTiming] = field(default_factory=list)


class Job:
    def __init__(self, port: Port, event: PortEvent, recipe: Recipe, stopping: Callable[[], bool]) -> None:
        self.id = next(_job_ids)
        self.port = port
        self.event = event
        self.recipe = recipe
        self.stopping = stopping
        self.limiter = trio.CapacityLimiter(1)
        self.device: FdHidDevice | None = None
        self.steps: list[StepTiming] = []
        self.log = structlog.get_logger("gangd.job").bind(
            port=port.path, label=port.label, job=self.id, serial=event.serial
        )

    async def run(self) -> JobResult:
        started_wall, started = time.time(), time.monotonic()
        result = JobResult(self.id, self.port.path, self.port.label, self.event.serial, "success", started=started_wall)
        self.port.state = "programming"
        try:
            await self._flow()
        except JobError as error:
            result.result, result.step, result.reason, result.status = (
                error.result, error.step, error.reason, error.status
            )  # fmt: skip
        finally:
            self._close()
            self.port.step = None
            self.port.state = "idle"
        result.duration_s = time.monotonic() - started
        result.steps = self.steps
        self.log.info(
            "job finished", result=result.result, step=result.step, reason=result.reason,
            duration_s=round(result.duration_s, 3),
        )  # fmt: skip
        return result

    # --- the flow -------------------------------------------------------------------------------

    async def _flow(self) -> None:
        recipe, deadlines = self.recipe, self.recipe.deadlines
        event = self.event
        if stage_of(recipe.family, event) == ROM:
            await self._step("load-flashloader", deadlines.load_flashloader_s, self._load_flashloader, event)
            self.port.state = "waiting-replug"
            event = await self._wait_stage("wait-replug", FLASHLOADER, deadlines.replug_s)
            self.port.state = "programming"
        mboot = await self._step("open", deadlines.command_s, self._open_mboot, event)
        await self._step("configure-memory", deadlines.command_s, self._configure, mboot)
        for image in recipe.images:
            await self._step("erase", deadlines.erase_s(image.erase_length), mboot.flash_erase_region,
                             image.address, image.erase_length, 0)  # fmt: skip
            await self._step("write", deadlines.data_s(len(image.data)), mboot.write_memory, image.address, image.data)
            if recipe.verify:
                await self._step("verify", deadlines.data_s(len(image.data)), self._verify, mboot, image)
        if recipe.final_action == "reset":
            await self._step("reset", deadlines.command_s, mboot.reset, 0, False)
            self._close()
            # Seeing it come back proves it rebooted; a board that boots its application without
            # USB never does, which is not a failure.
            self.port.state = "waiting-replug"
            with trio.move_on_after(deadlines.reset_replug_s):
                await self.port.wait_for_stage(ROM, deadlines.reset_replug_s, "reset")

    async def _wait_stage(self, step: str, stage: str, timeout_s: float) -> PortEvent:
        self.port.step = step
        started = time.monotonic()
        event = await self.port.wait_for_stage(stage, timeout_s, step)
        self.steps.append(StepTiming(step, time.monotonic() - started))
        return event

    # --- blocking bodies, run in the port's worker thread ---------------------------------------

    def _load_flashloader(self, event: PortEvent) -> None:
        device = self._open_device(event)
        sdp = sdp_client(device)
        sdp.open()
        sdp.write_file(self.recipe.flashloader_address, self.recipe.flashloader)
        sdp.jump_and_run(self.recipe.jump_address)

    def _open_mboot(self, event: PortEvent):
        device = self._open_device(event)
        mboot = mboot_client(device)
        mboot.open()
        return mboot

    def _configure(self, mboot) -> None:
        recipe = self.recipe
        for offset, word in enumerate(recipe.option_words):
            mboot.fill_memory(recipe.option_address + 4 * offset, 4, word)
        mboot.configure_memory(recipe.option_address, recipe.memory_id)

    def _verify(self, mboot, image) -> None:
        back = mboot.read_memory(image.address, len(image.data))
        if back != image.data:
            first = next((i for i, (a, b) in enumerate(zip(back, image.data)) if a != b), len(back))
            raise VerifyMismatch(f"read-back differs from the image at 0x{image.address + first:08x}")

    def _open_device(self, event: PortEvent) -> FdHidDevice:
        """This board's own handle: the exact node udev named for its port, checked against its ids."""
        self._close()
        if event.devnode is None:
            raise DeviceGoneError(f"port {event.port}: the event named no device node")
        self.device = FdHidDevice(event.devnode, timeout=HANDLE_TIMEOUT_MS, expected_ids=(event.vid, event.pid))
        self.device.open()
        return self.device

    def _close(self) -> None:
        if self.device is not None:
            self.device.abort()  # wakes an abandoned worker thread, if one is still blocked
            self.device.dispose()
            self.device = None

    # --- running one step -----------------------------------------------------------------------

    async def _step(self, name: str, deadline_s: float, fn: Callable[..., Any], *args: Any) -> Any:
        if self.stopping():
            raise JobStopped(self.port.path, name, "gangd is stopping; ended before this step")
        self.port.step = name
        started = time.monotonic()
        self.log.debug("step started", step=name, deadline_s=round(deadline_s, 3))
        try:
            with trio.fail_after(deadline_s):
                value = await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True, limiter=self.limiter)
        except trio.TooSlowError:
            if self.device is not None:
                self.device.abort()
            raise StepTimeout(self.port.path, name, f"no answer within the {deadline_s:g} s deadline") from None
        except (McuBootCommandError, SdpCommandError) as exc:
            status = exc.error_value
            raise CommandFailed(self.port.path, name, self._describe(exc), status) from exc
        except VerifyMismatch as exc:
            raise JobError(self.port.path, name, str(exc)) from exc
        except WrongDeviceError as exc:
            raise JobError(self.port.path, name, f"not the expected board: {exc}") from exc
        except (DeviceGoneError, TransportAborted, SPSDKConnectionError, McuBootConnectionError,
                SdpConnectionError) as exc:  # fmt: skip
            raise await self._lost(name, exc) from exc
        except SPSDKError as exc:
            raise JobError(self.port.path, name, str(exc)) from exc
        self.steps.append(StepTiming(name, time.monotonic() - started))
        return value

    @staticmethod
    def _describe(exc: McuBootCommandError | SdpCommandError) -> str:
        if isinstance(exc, McuBootCommandError):
            return f"{exc.cmd_name} failed: {stringify_status_code(exc.error_value)}"
        return str(exc)

    async def _lost(self, step: str, exc: Exception) -> JobError:
        """Was the board pulled out, or did it stop answering while still plugged in?"""
        with trio.move_on_after(REMOVAL_GRACE_S):
            while self.port.attached is not None:
                await self.port.next_event()
        if self.port.attached is None:
            return BoardRemoved(self.port.path, step, "the board was removed from the port")
        return JobError(self.port.path, step, f"lost contact with the board: {exc}")


class VerifyMismatch(Exception):
    pass
