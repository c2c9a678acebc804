"""The link between the station's supervisor and one of its worker processes.

Messages are tuples, pickled and length-prefixed on a stream socket (a socketpair the supervisor
made when it started the worker). Pickle, because both ends are this program at this version,
started by the same process: the link is never exposed to anything else. What goes over it is
small and rare next to the USB traffic the worker carries: a recipe once per version, a job's
start and end, its events, its observer notes (progress is already at most ~20 a second per
board) and the calls a job makes into what the supervisor owns (records, per-board data, port
power, the root port's bandwidth).
"""

from __future__ import annotations

import math
import pickle
import struct
from dataclasses import dataclass
from typing import Any

import trio

from gangd.core.events import PortEvent

HEADER = struct.Struct("<I")
MOST = 512 * 1024 * 1024  # a frame larger than this is a bug on the other end, not a message

Message = tuple[Any, ...]


class LinkClosed(Exception):
    """The other end is gone (exited, killed, or closed the link)."""


class Link:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._send_lock = trio.StrictFIFOLock()  # one frame at a time, whole
        self._buffer = bytearray()
        self.closed = False
        # What is told from synchronous code (observer notes, replies' "waiting") is queued here and
        # written by `run_sender`, in the order told: calls and notes keep the order they were made.
        self._out, self._out_next = trio.open_memory_channel[Message](math.inf)

    def tell(self, message: Message) -> None:
        """Queue `message` for `run_sender`; dropped once the link is closed."""
        if not self.closed:
            self._out.send_nowait(message)

    async def run_sender(self) -> None:
        """Writes what `tell` queued, everything queued at once in one write, until the link closes.
        Not cancellable: what a job tells while gangd shuts down (its record) must still go."""
        with trio.CancelScope(shield=True):
            await self._send_queued()

    async def _send_queued(self) -> None:
        while True:
            try:
                batch = [await self._out_next.receive()]
            except trio.EndOfChannel:
                return  # closed
            while True:
                try:
                    batch.append(self._out_next.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self.send(*batch)
            except LinkClosed:
                return

    async def send(self, *messages: Message) -> None:
        """The messages in order, in one write."""
        frames: list[bytes] = []
        for message in messages:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            frames += (HEADER.pack(len(data)), data)
        async with self._send_lock:
            try:
                await self.stream.send_all(b"".join(frames))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.closed = True
                raise LinkClosed(str(exc)) from None

    async def receive(self) -> Message | None:
        """The next message; None once the other end has closed the link."""
        while True:
            if len(self._buffer) >= HEADER.size:
                (length,) = HEADER.unpack_from(self._buffer)
                if length > MOST:
                    raise LinkClosed(f"a frame of {length} bytes: the other end is not a gangd worker link")
                if len(self._buffer) >= HEADER.size + length:
                    frame = bytes(self._buffer[HEADER.size : HEADER.size + length])
                    del self._buffer[: HEADER.size + length]
                    message: Message = pickle.loads(frame)
                    return message
            try:
                chunk = await self.stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self._buffer += chunk

    def finish(self) -> None:
        """Nothing more will be told: `run_sender` writes what is queued, then returns."""
        self._out.close()

    async def aclose(self) -> None:
        self.closed = True
        self._out.close()
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


@dataclass(frozen=True)
class JobStart:
    """What a worker needs to run one board's job: the supervisor's port as the job starts."""

    key: int  # the job on this link
    job_id: int  # the station's job number (logs and records), unique across the workers
    path: str
    label: str
    event: PortEvent  # the board's add that started the job
    attached: PortEvent | None  # the board the port holds as the job starts
    recipe_version: int
    records: bool  # the station keeps records (per-board data can be taken)
    power: bool  # the port's power can be switched (a recovery strategy)
    stopping: bool
    enumeration_allowance_s: float = 0.0  # the port's (Port.enumeration_allowance_s)
