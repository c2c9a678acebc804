"""What the operator sees: the station as tiles, a header and the last records, in plain words.

One model feeds the station page, its live stream, `gangd watch` and `/api/view`: for each port the
state it is shown in (idle, programming, recovering, waiting-replug, success, failed, suspect,
disabled), its progress and step, the board in it, the elapsed time, the reason of a failure and
its status code's explanation (two fields of the result and the record) and the instruction for
the person at the line ("Replug the board in A3").
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

from gangd import __version__
from gangd.engine import recovery
from gangd.engine.job import JobResult
from gangd.service.records import RecordStore
from gangd.station.port import Port
from gangd.station.station import Station

RECORDS = 50  # rows of the records table
RATE_WINDOW_S = 3600.0  # boards per hour over the last hour (or the uptime, when shorter)
BUSY = ("queued", "programming", "recovering", "waiting-replug")
STATES = ("idle", *BUSY, "success", "failed", "removed", "stopped", "suspect", "disabled")


def default_layout(paths: list[str]) -> list[list[str | None]]:
    """A grid in port order: 4 columns up to 16 ports, 8 beyond."""
    if not paths:
        return []
    columns = min(len(paths), 4 if len(paths) <= 16 else 8)
    return [list[str | None](paths[i : i + columns]) for i in range(0, len(paths), columns)]


def split_reason(reason: str | None) -> tuple[str | None, str | None]:
    """A record written before reason and explanation were apart:
    'write-memory failed: ... | 10200: The memory range is invalid.' -> (reason, explanation)."""
    if not reason:
        return None, None
    text, sep, explanation = reason.rpartition(" | ")
    return (text, explanation) if sep else (reason, None)


def shown_state(port: Port) -> str:
    job = port.job
    if job is not None:
        # A port being power-cycled by its job is "disabled" for the metrics, recovering for a person.
        return port.state if port.state in BUSY else "recovering"
    if port.disabled:
        return "disabled"
    if port.suspect:
        return "suspect"
    if port.present and port.last_job is not None:
        return port.last_job.result  # the finished board is still in the port
    return "idle"


def instruction(state: str, port: Port, stopping: bool = False) -> str:
    label = port.label
    last = port.last_job
    if state == "disabled":
        return f"{label} is disabled: a board there is left alone until it is enabled"
    if state == "suspect":
        return f"Move boards off suspect port {label}; check its cable and hub, then acknowledge"
    if state == "programming":
        return "Leave the board in: programming"
    if state == "waiting-replug":
        return "Leave the board in: it reconnects by itself"
    if state == "recovering":
        return "Leave the board in: gangd is recovering it"
    if state == "success":
        return f"Take the board out of {label}: programmed"
    if state == "failed":
        if last is not None and last.attempts and last.attempts[-1].action == recovery.REPLUG:
            return f"Replug the board in {label}"
        return f"Take the board out of {label} and put it with the failed boards"
    if state == "stopped":
        return f"gangd stopped while programming it: replug the board in {label}"
    if state == "removed":
        return f"The board left {label} before it was done: plug it in again"
    return "gangd is stopping: no new boards" if stopping else f"Plug a board into {label}"


def record_row(result: JobResult) -> dict[str, Any]:
    reason, explanation = result.reason, result.explanation
    return {
        "id": result.record_id or result.job_id,
        "finished": round(result.started + result.duration_s, 3),
        "port": result.port,
        "label": result.label,
        "board": result.serial,
        "uid": result.board_id,
        "result": result.result,
        "step": result.step if result.result != "success" else None,
        "reason": reason,
        "explanation": explanation,
        "duration_s": round(result.duration_s, 2),
        "flash_mhz": result.flash_clock_mhz,
        "marginal": result.marginal,
        "closed": result.closed,
        "recoveries": [a.action for a in result.attempts if a.action != "none"],
    }


def stored_row(row: dict[str, Any]) -> dict[str, Any]:
    reason, explanation = row["reason"], row.get("explanation")
    if explanation is None:  # a row written before the two were apart: "reason | explanation"
        reason, explanation = split_reason(reason)
    finished = row["finished"]
    return {
        "id": row["id"],
        "finished": finished,
        "port": row["port"],
        "label": row["label"],
        "board": row["serial"],
        "uid": row["board_id"],
        "result": row["result"],
        "step": row["step"] if row["result"] != "success" else None,
        "reason": reason,
        "explanation": explanation,
        "duration_s": round(finished - row["started"], 2) if finished else None,
        "flash_mhz": row["flash_clock_mhz"],
        "marginal": bool(row["marginal"]),
        "closed": any(
            e["stage"] == "close" and e["result"] in ("burned", "already-closed") for e in row.get("secure_boot") or []
        ),
        "recoveries": [a["action"] for a in row["attempts"] if a.get("action") not in (None, "none")],
    }


class StationView:
    def __init__(
        self,
        station: Station,
        layout: tuple[tuple[str | None, ...], ...] | None = None,
        records: RecordStore | None = None,
        control: bool = False,
        url: str | None = None,
    ) -> None:
        self.station = station
        self.layout = layout
        self.control = control
        self.url = url
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._finishes: deque[float] = deque()  # monotonic times of boards finished in the last hour
        self.recovered = 0  # boards programmed after at least one recovery
        self.marginal = 0
        self.records: deque[dict[str, Any]] = deque(maxlen=RECORDS)  # newest first
        self.records_version = 0
        if records is not None:
            self.records.extend(stored_row(row) for row in records.recent(RECORDS))
        station.listeners.append(self._finished)

    def _finished(self, result: JobResult) -> None:
        now = time.monotonic()
        if result.result in ("success", "failed"):
            self._finishes.append(now)
        if result.result == "success" and result.attempts:
            self.recovered += 1
        if result.result == "success" and result.marginal:
            self.marginal += 1
        self.records.appendleft(record_row(result))
        self.records_version += 1
        self.station.changes.notify()

    # --- the model ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Header, layout and one tile per port (the records travel separately: they change less)."""
        now = time.monotonic()
        ports = sorted(self.station.ports.values(), key=lambda p: p.path)
        return {
            "version": __version__,
            "header": self.header(now),
            "layout": self.grid([p.path for p in ports]),
            "ports": [self.tile(port, now) for port in ports],
            "records_version": self.records_version,
        }

    def grid(self, paths: list[str]) -> list[list[str | None]]:
        if self.layout is None:
            return default_layout(paths)
        rows = [list(row) for row in self.layout]
        placed = {path for row in rows for path in row if path}
        extra = [path for path in paths if path not in placed]  # ports found at run time
        return rows + default_layout(extra)

    def header(self, now: float) -> dict[str, Any]:
        station = self.station
        counts = dict(station.counts)
        ok, failed = counts.get("success", 0), counts.get("failed", 0)
        while self._finishes and self._finishes[0] < now - RATE_WINDOW_S:
            self._finishes.popleft()
        window = min(max(now - self.started, 60.0), RATE_WINDOW_S)  # no wild figures in the first minute
        recipe = station.recipe
        return {
            "uptime_s": round(now - self.started, 1),
            "started": self.started_wall,
            "counts": counts,
            "finished": station.jobs_finished,
            "programmed": ok,
            "failed": failed,
            "recovered": self.recovered,
            "marginal": self.marginal,
            "yield": round(ok / (ok + failed), 4) if ok + failed else None,
            "boards_per_hour": round(len(self._finishes) * 3600.0 / window, 1),
            "recipe": {
                "family": recipe.family.name,
                "images": [
                    {"address": f"0x{i.address:08x}", "size": len(i.data), "sha256": i.sha256} for i in recipe.images
                ],
            },
            # Each USB root port (bandwidth domain): flashloader-stage boards on the bus now, queued ones.
            "root_ports": [
                {"root_port": domain, **occupancy}
                for domain, occupancy in station.admission.status(station.ports).items()
            ],
            "control": self.control,
            "stopping": station.stopping,
            "url": self.url,
        }

    def tile(self, port: Port, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        state = shown_state(port)
        job, last = port.job, port.last_job
        board = uid = None
        if job is not None:
            board, uid = job.event.serial, job.result.board_id
        elif port.present and last is not None:
            board, uid = last.serial, last.board_id
        elif port.attached is not None:
            board = port.attached.serial
        elapsed: float | None
        if job is not None and port.busy_since is not None:
            elapsed = now - port.busy_since
        elif state in ("success", "failed", "removed", "stopped"):
            elapsed = port.last_duration_s
        else:
            elapsed = None
        reason = port.last_reason
        explanation = last.explanation if last is not None and last.reason == reason else None
        note = None
        closed = state == "success" and last is not None and last.closed
        if closed:
            note = "closed (HAB): only images signed with its SRK keys run on it now"
        elif state == "success" and last is not None and last.marginal:
            note = f"marginal flash: programmed at {last.flash_clock_mhz} MHz"
        elif state == "success" and last is not None and last.attempts:
            note = f"recovered: {', '.join(sorted({a.action for a in last.attempts}))}"
        return {
            "port": port.path,
            "label": port.label,
            "state": state,
            "step": port.step if job is not None else None,
            "progress": round(port.progress, 3) if job is not None else (1.0 if state == "success" else 0.0),
            "attempt": job.attempt if job is not None else None,
            "board": board,
            "uid": uid,
            "present": port.present,
            "elapsed_s": None if elapsed is None or math.isnan(elapsed) else round(elapsed, 1),
            "last_result": port.last_result,
            "reason": reason if port.last_result not in (None, "success") else None,
            "explanation": explanation if port.last_result not in (None, "success") else None,
            "note": note,
            "closed": closed,
            "instruction": instruction(state, port, self.station.stopping),
            "suspect": port.suspect,
            "disabled": port.disabled,
            "counts": dict(port.counts),
        }

    def record_rows(self) -> list[dict[str, Any]]:
        return list(self.records)
