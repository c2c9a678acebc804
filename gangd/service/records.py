"""Durable board records in SQLite: one row per job, committed before the board is reported done.

A row is inserted as `running` when the job starts and completed when it ends; on start-up every
row still `running` belongs to a daemon that died mid-job and is marked `interrupted`. The journal
is WAL with synchronous=FULL, so a committed record survives SIGKILL and power loss.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gangd.config.recipe import BoardData
from gangd.core.errors import DataExhausted as DataExhausted  # raised by allocate(); callers catch it
from gangd.service import board_data
from gangd.service.board_data import list_values as list_values  # re-exported for the station

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    port        TEXT NOT NULL,
    label       TEXT NOT NULL,
    serial      TEXT,
    board_id    TEXT,
    family      TEXT NOT NULL,
    images      TEXT NOT NULL,           -- JSON: [{"address": .., "size": .., "sha256": ..}]
    started     REAL NOT NULL,
    finished    REAL,
    result      TEXT NOT NULL,           -- running | success | failed | removed | stopped | interrupted
    step        TEXT,
    reason      TEXT,
    status      INTEGER,
    steps       TEXT NOT NULL DEFAULT '[]',    -- JSON: [{"name", "seconds", "attempt"}]
    attempts    TEXT NOT NULL DEFAULT '[]',    -- JSON: [{"attempt", "step", "status", "error", "class", "action"}]
    fuses       TEXT NOT NULL DEFAULT '[]',    -- JSON: [{"name", "index", "before", "after", "action"}]
    flash_clock_mhz INTEGER,                   -- the read clock the images were programmed at
    marginal    INTEGER NOT NULL DEFAULT 0,    -- 1: programmed below the recipe's clock
    diagnoses   TEXT NOT NULL DEFAULT '[]',    -- JSON: [{"step", "status", "finding", "failed_mhz", "mhz", "code", "detail"}]
    board_data  TEXT NOT NULL DEFAULT '{}',    -- JSON: {name: value} handed to this board
    station     TEXT,                          -- [station] name of the station that ran the job
    delivered   INTEGER NOT NULL DEFAULT 0     -- 1: in the line database (the outbox is the rest)
);
CREATE INDEX IF NOT EXISTS jobs_port ON jobs (port, id);
-- Per-board data: every value ever handed out, to which board, by which job. A value is never
-- handed to a second board (primary key); a board asking again gets its own value back.
CREATE TABLE IF NOT EXISTS board_data (
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    seq         INTEGER NOT NULL,          -- counter: the number; list: the line's position
    board_id    TEXT NOT NULL,
    record_id   INTEGER NOT NULL,          -- the job that took it first
    allocated   REAL NOT NULL,
    PRIMARY KEY (name, value)
);
CREATE UNIQUE INDEX IF NOT EXISTS board_data_board ON board_data (name, board_id);
"""


COLUMNS = (
    "id",
    "port",
    "label",
    "serial",
    "board_id",
    "family",
    "images",
    "started",
    "finished",
    "result",
    "step",
    "reason",
    "explanation",
    "status",
    "steps",
    "attempts",
    "fuses",
    "flash_clock_mhz",
    "marginal",
    "diagnoses",
    "board_data",
    "station",
    "secure_boot",
)
JSON_COLUMNS = ("images", "steps", "attempts", "fuses", "diagnoses", "board_data", "secure_boot")
# Columns added after the first release, with their definitions: a database written by an older
# gangd gains them when it is opened (SQLite's ALTER TABLE ADD COLUMN keeps every existing row).
ADDED_COLUMNS = {
    "flash_clock_mhz": "INTEGER",
    "marginal": "INTEGER NOT NULL DEFAULT 0",
    "diagnoses": "TEXT NOT NULL DEFAULT '[]'",
    "board_data": "TEXT NOT NULL DEFAULT '{}'",
    "station": "TEXT",
    "delivered": "INTEGER NOT NULL DEFAULT 0",
    # JSON: [{"stage": srk|proof|close|confirm|locks, "result", ...evidence}] ([secure_boot])
    "secure_boot": "TEXT NOT NULL DEFAULT '[]'",
    # The status code's one-line explanation, apart from the reason (older rows: " | " in the reason)
    "explanation": "TEXT",
}


class RecordStore:
    def __init__(self, path: str | Path, station: str | None = None, line: Any = None) -> None:
        self.path = Path(path)
        self.station = station  # written on every row this store starts
        self.line = line  # a gangd.service.line.LineDatabase: per-board data comes from the line
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the daemon's worker threads, serialized by a lock.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Records are written once and read rarely: a small page cache keeps the daemon's
            # memory flat as the file grows (SQLite's default grows to 2 MiB).
            self._db.execute("PRAGMA cache_size=-256")
            self._db.executescript(SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for column, definition in ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def mark_interrupted(self) -> int:
        """Rows left `running` by a daemon that died; returns how many were marked."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET result='interrupted', finished=?, reason=coalesce(reason, "
                "'gangd stopped while the job ran (killed or crashed)') WHERE result='running'",
                (time.time(),),
            )
            return cursor.rowcount

    def start(self, **fields: Any) -> int:
        fields = {**fields, "result": "running"}
        if self.station is not None:
            fields.setdefault("station", self.station)
        return self._write("INSERT INTO jobs ({}) VALUES ({})", fields)

    def update(self, job_id: int, **fields: Any) -> None:
        self._write("UPDATE jobs SET {} WHERE id=?", fields, job_id)

    def _write(self, sql: str, fields: dict[str, Any], job_id: int | None = None) -> int:
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
        if job_id is None:
            statement = sql.format(", ".join(fields), ", ".join("?" * len(fields)))
        else:
            statement = sql.format(", ".join(f"{k}=?" for k in fields))
            values.append(job_id)
        with self._lock:
            cursor = self._db.execute(statement, values)  # autocommit: durable on return
            return (cursor.lastrowid or 0) if job_id is None else job_id

    def allocate(self, record_id: int, board_id: str, entries: list[BoardData]) -> dict[str, str]:
        """The per-board values of one board (the policy: gangd/service/board_data.py), in one
        transaction with its job's record. Raises DataExhausted when a list has none left. With a
        line database the values come from it (LineUnavailable when it does not answer) and are
        kept here too."""
        line_values = None if self.line is None else self.line.allocate(record_id, board_id, entries)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if line_values is not None:
                    values = line_values
                    for name, value in values.items():
                        self._db.execute(
                            "INSERT OR IGNORE INTO board_data (name, value, seq, board_id, record_id, allocated) "
                            "VALUES (?, ?, -1, ?, ?, ?)",
                            (name, value, board_id, record_id, time.time()),
                        )
                else:
                    values = board_data.allocate(_Allocations(self._db, record_id), board_id, entries)
                self._db.execute("UPDATE jobs SET board_data=? WHERE id=?", (json.dumps(values), record_id))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")  # durable on return (synchronous=FULL)
            return values

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """The outbox: finished rows not yet in the line database, in id order, up to the first row
        still running (a station's records reach the line in the order its jobs started)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE delivered=0 AND id < coalesce("
                "(SELECT min(id) FROM jobs WHERE result='running'), 9223372036854775807) ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {k: json.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in zip(COLUMNS, row)}
            for row in rows
        ]

    def mark_delivered(self, ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("UPDATE jobs SET delivered=1 WHERE id=?", [(i,) for i in ids])

    def undelivered(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM jobs WHERE delivered=0").fetchone()[0])

    def has_values(self, entries: Sequence[BoardData]) -> bool:
        """Does every list among `entries` still have a value no board has taken?"""
        used = {(a["name"], a["value"]) for a in self.allocations()}
        return not any(
            entry.list_file and all((entry.name, value) in used for value in list_values(entry.list_file))
            for entry in entries
        )

    def allocations(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, value, seq, board_id, record_id FROM board_data ORDER BY name, seq"
            ).fetchall()
        return [dict(zip(("name", "value", "seq", "board_id", "record_id"), row)) for row in rows]

    def jobs(self, port: str | None = None, result: str | None = None) -> list[dict[str, Any]]:
        query, params = f"SELECT {', '.join(COLUMNS)} FROM jobs", []
        conditions = []
        if port:
            conditions.append("(port=? OR label=?)")
            params += [port, port]
        if result:
            conditions.append("result=?")
            params.append(result)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [
            {k: json.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in zip(COLUMNS, row)}
            for row in rows
        ]

    def successes_elsewhere(self, board_id: str, port: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM jobs WHERE board_id=? AND port<>? AND result='success' LIMIT 1", (board_id, port)
            ).fetchone()
        return row is not None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` finished jobs, newest first (the station page's table)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE result<>'running' ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [
            {k: json.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in zip(COLUMNS, row)}
            for row in rows
        ]


class _Allocations:
    """board_data.Allocations over the station's SQLite table, inside allocate()'s transaction."""

    def __init__(self, db: sqlite3.Connection, record_id: int) -> None:
        self._db = db
        self._record_id = record_id

    def lock(self, name: str) -> None:
        pass  # BEGIN IMMEDIATE holds the database's write lock for the whole transaction

    def owned(self, name: str, board_id: str) -> str | None:
        row = self._db.execute("SELECT value FROM board_data WHERE name=? AND board_id=?", (name, board_id)).fetchone()
        return None if row is None else str(row[0])

    def last_seq(self, name: str) -> int | None:
        last = self._db.execute("SELECT max(seq) FROM board_data WHERE name=?", (name,)).fetchone()[0]
        return None if last is None else int(last)

    def used(self, name: str) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT value FROM board_data WHERE name=?", (name,))}

    def record(self, name: str, value: str, seq: int, board_id: str) -> None:
        self._db.execute(
            "INSERT INTO board_data (name, value, seq, board_id, record_id, allocated) VALUES (?, ?, ?, ?, ?, ?)",
            (name, value, seq, board_id, self._record_id, time.time()),
        )


def export(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in row.items()})
    return buffer.getvalue()
