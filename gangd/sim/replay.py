"""A simulated board that answers as a recorded board did: a gangd trace played back.

The board walks the trace (gangd/trace/file.py) with one cursor. Each report the host sends must
be the next report the trace holds from the host (byte for byte; with `payload = "hash"`, the
report's header and length); the board then sends what the recorded board sent after it, each
after the recorded delay (times `time_scale`). A `remove` in the trace takes the board off the bus
(re-enumerating after the recorded gap into the recorded stage and ids, or never returning when
the trace holds no later `add`); a `power-cycle` waits for the host to cycle the port, after which
the board is the recorded board's next enumeration.

Asked anything else, the board has no answer the trace could give: it logs "replay diverged at
report N" and answers every later command with the status `gangd.trace.diverged_status(N)`, which
gangd's job records as its reason (engine/explain.py). In the ROM's SDP stage spsdk only knows its
own status codes: there the HAB and status words carry the same value and the job fails with
spsdk's message; `divergence` still names the report.

With `payload = "hash"` the recorded read-back data is not in the trace, only its length and
sha256: the board answers a read with the bytes the host wrote in this stage (or erased flash,
0xFF) when their sha256 is the recorded one, else with zeros (and the host's verify fails).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import Any

from gangd.config.family import FamilyInfo, UsbIds
from gangd.sim.board import FLASHLOADER, ROM, BoardSpec, LeaveStage, SimBoard, Unplugged
from gangd.sim.links import MBOOT_IN_REPORT_SIZE, LinkClosed
from gangd.sim.loop import wait_event
from gangd.sim.timing import TimingModel
from gangd.trace import diverged_status, divergence_reason
from gangd.trace import file as tf

log = logging.getLogger(__name__)

MBOOT_CMD_OUT, MBOOT_DATA_OUT, MBOOT_CMD_IN, MBOOT_DATA_IN = 1, 2, 3, 4
SDP_HAB, SDP_RET = 3, 4
GENERIC_RESPONSE = 0xA0  # spsdk mboot/commands.py ResponseTag.GENERIC
INFO_EVENTS = {"step", "step-failed", "clock-fallback", "data"}


class ReplayBoard(SimBoard):
    def __init__(self, trace: tf.Trace, family: FamilyInfo, time_scale: float = 1.0) -> None:
        first = next((e for e in trace.entries if e.kind == tf.EVENT and e.event.get("event") == "add"), None)
        if first is None:
            raise tf.TraceError(f"{trace.path}: the trace holds no udev add: no board to replay")
        stage = first.event.get("stage") or ROM
        spec = BoardSpec(
            family=family,
            serial=first.event.get("serial") or str(trace.meta.get("serial") or "REPLAY"),
            uuid=0,
            stage=stage,
            timing=TimingModel(time_scale=0.0),  # the trace's timing, not the model's
        )
        super().__init__(spec)
        self.trace = trace
        self.time_scale = time_scale
        self.entries = trace.entries
        self.cursor = 0
        # Each report's number in the trace (1-based, as `gangd trace show` numbers them).
        self.numbers: list[int] = []
        count = 0
        for entry in trace.entries:
            count += entry.kind != tf.EVENT
            self.numbers.append(count if entry.kind != tf.EVENT else count + 1)
        self.consumed: set[int] = set()  # entries sent ahead of their place (see _in_flight)
        self.ids = UsbIds(first.event["vid"], first.event["pid"])
        self.divergence: str | None = None
        self.diverged_report: int | None = None
        self._written: list[bytes] = []  # the host's data-out runs in this stage (hash traces)
        self._run = bytearray()
        self._advance_to_add()

    # --- the board's life (hub.py calls these) ----------------------------------------------------

    @property
    def usb_ids(self) -> UsbIds:
        return self.ids

    def enter(self, stage: str) -> None:
        """Re-enumeration (after a remove, or a power cycle): the trace's next enumeration. A board
        that has diverged has left the trace: it comes back in the stage the host put it in, with
        that stage's ids, and keeps answering with the divergence."""
        super().enter(stage)
        if self.divergence is not None:
            self.ids = SimBoard.usb_ids.fget(self)  # type: ignore[attr-defined]
            self.protocol = "sdp" if stage == ROM and self.family.rom_protocol == "sdp" else "mboot"
            return
        self._advance_to_add()

    def _advance_to_add(self) -> None:
        while self.cursor < len(self.entries):
            entry = self.entries[self.cursor]
            self.cursor += 1
            if entry.kind == tf.EVENT and entry.event.get("event") == "add":
                self.stage = FLASHLOADER if entry.event.get("stage") == FLASHLOADER else ROM
                self.ids = UsbIds(entry.event["vid"], entry.event["pid"])
                self.protocol = entry.event.get("protocol") or "mboot"
                self._written, self._run = [], bytearray()
                self._at_ns = entry.t_ns
                return

    def serve_replay(self, hid: Any) -> None:
        """Serve one opened handle (hub.serve_hid) until it closes or the board leaves the bus."""
        while True:
            if self.divergence is not None:
                self._answer_diverged(hid, hid.recv_report())
                continue
            entry = self._next()
            if entry is None:  # the trace ends here: anything more the host asks diverges
                self._diverge(hid, hid.recv_report(), len(self.trace.reports()) + 1, "the trace ends here")
                continue
            if entry.kind == tf.OUT:
                report = hid.recv_report()
                if not self._matches(report, entry):
                    self._diverge(hid, report, self.numbers[self.cursor], "gangd sent another report")
                    continue
                self._take(entry)
                self._note_out(report)
            elif entry.kind == tf.IN:
                self._wait_until(entry)
                hid.send_report(self._reply(entry))
                self._take(entry)
            else:
                self._event(entry, hid)

    # --- walking the trace ------------------------------------------------------------------------

    def _next(self) -> tf.Entry | None:
        while self.cursor < len(self.entries):
            entry = self.entries[self.cursor]
            if self.cursor in self.consumed or (entry.kind == tf.EVENT and entry.event.get("event") in INFO_EVENTS):
                self.cursor += 1
                continue
            return entry
        return None

    def _take(self, entry: tf.Entry) -> None:
        self.cursor += 1
        self._at_ns = entry.t_ns

    def _wait_until(self, entry: tf.Entry) -> None:
        delay = max(0.0, (entry.t_ns - self._at_ns) / 1e9 * self.time_scale)
        if delay and wait_event(self.unplugged, delay):
            raise LinkClosed("board unplugged")

    def _in_flight(self) -> list[int]:
        """Reports the board sent before it left that the host read only after the remove (the
        recorder stamps a report when the host reads it): the board never speaks unprompted, so
        every report in before the host's next report out is one of them."""
        found = []
        for index in range(self.cursor, len(self.entries)):
            entry = self.entries[index]
            if entry.kind == tf.OUT:
                break
            if entry.kind == tf.IN and index not in self.consumed:
                found.append(index)
        return found

    def _event(self, entry: tf.Entry, hid: Any) -> None:
        kind = entry.event.get("event")
        if kind == "power-cycle":
            # The host cut the port's power here: wait for it to do so again (the hub's power
            # cycle unplugs this board; `enter` then moves to the trace's next enumeration).
            self.cursor += 1
            wait_event(self.unplugged)
            raise LinkClosed("power cycled")
        if kind == "remove":
            self._take(entry)
            for index in self._in_flight():
                hid.send_report(self._reply(self.entries[index]))
                self.consumed.add(index)
            later = self._next()
            if later is not None and later.kind == tf.EVENT and later.event.get("event") == "add":
                stage = FLASHLOADER if later.event.get("stage") == FLASHLOADER else ROM
                gap = max(0.0, (later.t_ns - entry.t_ns) / 1e9 * self.time_scale)
                raise LeaveStage(stage, reappear=True, delay_s=gap)
            if later is not None and later.kind == tf.EVENT and later.event.get("event") == "power-cycle":
                # Dark until the host cycles the port's power (a flashloader that never came up).
                raise LeaveStage(ROM, reappear=False)
            # Nothing after it (or reports to a board the trace lost track of): the recorded
            # board left and never came back.
            raise Unplugged()
        self.cursor += 1  # an add without a remove before it (coldplug racing): skip

    def _matches(self, report: bytes, entry: tf.Entry) -> bool:
        if not entry.hashed:
            return report == entry.data
        # A hashed data report: its header and length are all the trace holds.
        return len(report) == entry.length and report[: len(entry.data)] == entry.data

    def _note_out(self, report: bytes) -> None:
        """Collect the host's data-out payloads, for answering hashed read-backs."""
        if report[:1] == bytes([MBOOT_DATA_OUT]) and self.protocol == "mboot" and len(report) >= 4:
            (length,) = struct.unpack_from("<H", report, 2)
            self._run += report[4 : 4 + length]
        elif self._run:
            self._written.append(bytes(self._run))
            self._run = bytearray()

    def _reply(self, entry: tf.Entry) -> bytes:
        if not entry.hashed:
            return entry.data
        return self._rebuild_hashed(entry)

    def _rebuild_hashed(self, entry: tf.Entry) -> bytes:
        """A hashed data-in report: the recorded run's bytes from what the host wrote, if they hash alike."""
        digest_event, offset = self._run_digest()
        data = b""
        if digest_event is not None:
            size = digest_event["bytes"]
            candidates = [b"\xff" * size] + [w for w in reversed(self._written) if len(w) >= size]
            if self._run:
                candidates.append(bytes(self._run))
            candidates.append(b"".join(self._written))
            for candidate in candidates:
                if hashlib.sha256(candidate[:size]).hexdigest() == digest_event["sha256"]:
                    data = candidate[:size]
                    break
        (length,) = struct.unpack_from("<H", entry.data, 2) if len(entry.data) >= 4 else (0,)
        chunk = data[offset : offset + length].ljust(length, b"\0")
        return (entry.data[:4] + chunk).ljust(entry.length, b"\0")

    def _run_digest(self) -> tuple[dict[str, Any] | None, int]:
        """The `data` event closing the run the cursor is in, and the payload offset of the cursor's report."""
        offset = 0
        index = self.cursor - 1
        while (
            index >= 0
            and self.entries[index].kind == tf.IN
            and len(self.entries[index].data) < self.entries[index].length
        ):
            prev = self.entries[index].data
            offset += struct.unpack_from("<H", prev, 2)[0] if len(prev) >= 4 else 0
            index -= 1
        for later in self.entries[self.cursor :]:
            if later.kind == tf.EVENT and later.event.get("event") == "data":
                return later.event, offset
            if later.kind == tf.OUT:
                break
        return None, offset

    # --- divergence -------------------------------------------------------------------------------

    def _diverge(self, hid: Any, report: bytes, number: int, why: str) -> None:
        self.diverged_report = number
        self.divergence = f"{divergence_reason(number)} ({why}: {report[:16].hex()})"
        log.warning("%s: %s", self.trace.path, self.divergence)
        self._answer_diverged(hid, report, first=True)

    def _answer_diverged(self, hid: Any, report: bytes, first: bool = False) -> None:
        assert self.diverged_report is not None
        status = diverged_status(self.diverged_report)
        if self.protocol == "sdp":
            hid.send_report(bytes([SDP_HAB]) + struct.pack(">I", status))
            hid.send_report(bytes([SDP_RET]) + struct.pack(">I", status).ljust(64, b"\0"))
            return
        is_command = report[:1] == bytes([MBOOT_CMD_OUT]) and len(report) >= 5
        if not is_command and not first:
            return  # a data report of a refused phase: the answer went out with its command
        command_tag = report[4] if is_command else 0
        payload = struct.pack("<4B2I", GENERIC_RESPONSE, 0, 0, 2, status, command_tag)
        hid.send_report(
            (struct.pack("<BBH", MBOOT_CMD_IN, 0, len(payload)) + payload).ljust(MBOOT_IN_REPORT_SIZE, b"\0")
        )
