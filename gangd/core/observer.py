"""What a job tells the rest of gangd, through one interface.

The job engine (`job.py`) reports every change of a board's job to its observers: the port (its
state and progress for /status, and the Prometheus metrics), the records store (durable, written
before the result is reported) and whatever else is attached. The engine knows none of them.
"""

from __future__ import annotations

from typing import Protocol

import trio

from gangd.core.results import JobResult
from gangd.core.types import JobRecords


class JobObserver(Protocol):
    async def job_started(self, result: JobResult, images: list[dict[str, object]], family: str) -> None: ...

    def state_changed(self, state: str) -> None: ...

    def step_started(self, step: str) -> None: ...

    def step_finished(self, step: str, seconds: float) -> None: ...

    def progress_changed(self, fraction: float) -> None: ...

    def step_failed(self, step: str, code_class: str, action: str) -> None: ...

    def bytes_written(self, count: int) -> None: ...

    def clock_fallback(self) -> None: ...

    async def job_finished(self, result: JobResult) -> None: ...


class RecordObserver:
    """Keeps each job's row in the records store: inserted as `running` when the job starts,
    completed when it ends. Both run in a worker thread; the completion is shielded, so a job
    cancelled by shutdown still leaves its record."""

    def __init__(self, store: JobRecords) -> None:
        self.store = store

    async def job_started(self, result: JobResult, images: list[dict[str, object]], family: str) -> None:
        result.record_id = await trio.to_thread.run_sync(
            lambda: self.store.start(
                port=result.port,
                label=result.label,
                serial=result.serial,
                family=family,
                images=images,
                started=result.started,
            )
        )

    async def job_finished(self, result: JobResult) -> None:
        with trio.CancelScope(shield=True):
            record_id = result.record_id
            if record_id is not None:
                await trio.to_thread.run_sync(lambda: self.store.update(record_id, **result.to_record()))

    def state_changed(self, state: str) -> None:
        pass

    def step_started(self, step: str) -> None:
        pass

    def step_finished(self, step: str, seconds: float) -> None:
        pass

    def progress_changed(self, fraction: float) -> None:
        pass

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        pass

    def bytes_written(self, count: int) -> None:
        pass

    def clock_fallback(self) -> None:
        pass


class Observers:
    """The job's observers as one: each event is a typed call, told to every observer in order
    (no dispatch by method name)."""

    def __init__(self, observers: list[JobObserver]) -> None:
        self.observers = observers

    async def job_started(self, result: JobResult, images: list[dict[str, object]], family: str) -> None:
        for observer in self.observers:
            await observer.job_started(result, images, family)

    async def job_finished(self, result: JobResult) -> None:
        with trio.CancelScope(shield=True):  # the record is written even while shutting down
            for observer in self.observers:
                await observer.job_finished(result)

    def state_changed(self, state: str) -> None:
        for observer in self.observers:
            observer.state_changed(state)

    def step_started(self, step: str) -> None:
        for observer in self.observers:
            observer.step_started(step)

    def step_finished(self, step: str, seconds: float) -> None:
        for observer in self.observers:
            observer.step_finished(step, seconds)

    def progress_changed(self, fraction: float) -> None:
        for observer in self.observers:
            observer.progress_changed(fraction)

    def step_failed(self, step: str, code_class: str, action: str) -> None:
        for observer in self.observers:
            observer.step_failed(step, code_class, action)

    def bytes_written(self, count: int) -> None:
        for observer in self.observers:
            observer.bytes_written(count)

    def clock_fallback(self) -> None:
        for observer in self.observers:
            observer.clock_fallback()
