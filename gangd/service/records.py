"""Durable board records in SQLite: one row per job, committed before the board is reported done.

A row is inserted as `running` when the job starts and completed when it ends; on start-up every
row still `running` belongs to a daemon that died mid-job and is marked `interrupted`. The journal
is WAL with synchronous=FULL, so a committed record survives SIGKILL and power loss.

The host's faults surface here (disk full, read-only, I/O error, locked by a backup tool): a write
that fails for one of them raises JournalUnwritable with the reason in the operator's words and
sets `fault`; a job's completion that cannot be written is held in memory (`held`) and written by
`recover()` as soon as the journal takes writes again. A file that is not a gangd journal raises
JournalDamaged when opened; gangd never deletes or overwrites it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gangd.config.recipe import BoardData
from gangd.core.errors import DataExhausted as DataExhausted  # raised by allocate(); callers catch it
from gangd.core.errors import JournalDamaged, JournalUnwritable
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


# SQLite's primary result codes (https://www.sqlite.org/rescode.html): the ones that say the file
# cannot be written now, and the ones that say it is not a database at all.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 5, 6, 8, 10, 13, 14
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
# How long a write waits for a lock held by another process (a backup tool's read transaction
# does not block WAL writers; `sqlite3 .backup` or a checkpointing reader can) before the journal
# counts as locked. Our choice: long enough for a backup's short write lock, short enough that the
# station says so while the operator is still looking.
BUSY_TIMEOUT_S = 5.0


def journal_fault(exc: sqlite3.Error, path: Path) -> str | None:
    """The operator's reason for a failed write, or None if it is not a fault of the host (a bug)."""
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    directory = path.parent
    if code == SQLITE_FULL:
        try:
            stat = os.statvfs(directory)
            free = f"{stat.f_bavail * stat.f_frsize} bytes free"
        except OSError:
            free = "free space unknown"
        return f"state directory full: {directory}, {free}"
    if code == SQLITE_READONLY:
        return f"state directory read-only: {directory}"
    if code in (SQLITE_IOERR, SQLITE_CANTOPEN):
        if read_only(directory):
            return f"state directory read-only: {directory}"
        return f"state directory I/O error: {directory} ({exc})"
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return f"journal locked by another process: {path}"
    return None


def read_only(directory: Path) -> bool:
    """Has the directory's filesystem turned read-only under us? A failing disk mounted with
    ext4's `errors=remount-ro` (Documentation/admin-guide/ext4.rst; Debian's installer puts it in fstab)
    is: SQLite then reports the refused write as SQLITE_IOERR_WRITE, not SQLITE_READONLY, and
    statvfs() does not show it (Linux 6.18 marks it `emergency_ro`, not ST_RDONLY; measured). A
    file created and removed at once asks the filesystem itself: EROFS."""
    probe = directory / f".gangd-write-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        return exc.errno == errno.EROFS
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return False


def damaged(path: Path, what: str) -> JournalDamaged:
    return JournalDamaged(
        f"{path}: {what}; gangd leaves it as it is: move it aside (or restore a backup) and start again, "
        "or change --state-dir"
    )


class RecordStore:
    def __init__(
        self, path: str | Path, station: str | None = None, line: Any = None, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path)
        self.station = station  # written on every row this store starts
        self.line = line  # a gangd.service.line.LineDatabase: per-board data comes from the line
        self.fault: str | None = None  # why the journal cannot be written now (None: it can)
        self.held: dict[int, dict[str, Any]] = {}  # completions not yet written, by record id
        self._interrupted_owed = False  # mark_interrupted() could not write: recover() does it first
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the daemon's worker threads, serialized by a lock.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        try:
            with self._lock:
                self._open()
        except sqlite3.Error as exc:
            self._db.close()
            code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
            if code in (SQLITE_NOTADB, SQLITE_CORRUPT):
                raise damaged(self.path, f"not a SQLite database ({exc})") from None
            reason = journal_fault(exc, self.path)
            if reason is None:
                raise
            raise JournalUnwritable(reason) from None

    def _open(self) -> None:
        # Read before anything is written: a foreign file is left byte for byte as it was.
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "jobs" not in tables:
            raise damaged(self.path, "a SQLite database of another program (no jobs table)")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # Records are written once and read rarely: a small page cache keeps the daemon's
        # memory flat as the file grows (SQLite's default grows to 2 MiB).
        self._db.execute("PRAGMA cache_size=-256")
        self._db.executescript(SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if not {"id", "port", "result", "started"} <= present:
            raise damaged(self.path, "its jobs table is not gangd's")
        for column, definition in ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity(self) -> list[str]:
        """SQLite's integrity check (https://www.sqlite.org/pragma.html#pragma_integrity_check):
        the problems it finds, none for a sound journal. A damaged page may also raise
        sqlite3.DatabaseError here; the caller reports it."""
        with self._lock:
            rows = [str(row[0]) for row in self._db.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

    def mark_interrupted(self) -> int:
        """Rows left `running` by a daemon that died; returns how many were marked. On a journal
        that cannot be written the marking is owed: recover() does it before anything else."""
        with self._lock:
            try:
                return self._mark_interrupted()
            except sqlite3.Error as exc:
                self._interrupted_owed = True
                raise self._unwritable(exc) from None

    def _mark_interrupted(self) -> int:
        cursor = self._db.execute(
            "UPDATE jobs SET result='interrupted', finished=?, reason=coalesce(reason, "
            "'gangd stopped while the job ran (killed or crashed)') WHERE result='running'",
            (time.time(),),
        )
        self._interrupted_owed = False
        return cursor.rowcount

    def start(self, **fields: Any) -> int:
        """The job's row, `running`; JournalUnwritable if it cannot be written (the job must then
        not touch its board). Refused while anything is owed, so rows stay in job order."""
        fields = {**fields, "result": "running"}
        if self.station is not None:
            fields.setdefault("station", self.station)
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
        statement = f"INSERT INTO jobs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
        with self._lock:
            if self._interrupted_owed or self.held:
                raise JournalUnwritable(self.fault or "the journal has records still to write")
            try:
                cursor = self._db.execute(statement, values)  # autocommit: durable on return
            except sqlite3.Error as exc:
                raise self._unwritable(exc) from None
            self.fault = None
            return cursor.lastrowid or 0

    def update(self, job_id: int, **fields: Any) -> bool:
        """Complete (or amend) a job's row. If the journal cannot take it now the fields are held
        in memory and written by recover(): returns False then. Never raises for a host fault."""
        with self._lock:
            # Held only once a write failed: readers of `held` (the station, without the lock)
            # never see a completion that is merely being written.
            owed = {**self.held.get(job_id, {}), **fields}
            try:
                self._flush_held()  # older completions first: rows complete in job order
                values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in owed.items()]
                self._db.execute(f"UPDATE jobs SET {', '.join(f'{k}=?' for k in owed)} WHERE id=?", [*values, job_id])
            except sqlite3.Error as exc:
                self.held[job_id] = owed
                self._unwritable(exc)
                return False
            self.held.pop(job_id, None)
            return True

    def recover(self) -> bool:
        """Write what the journal owes (the interrupted mark, held completions), or probe it with a
        harmless write when nothing is owed; True once it takes writes again."""
        with self._lock:
            try:
                if self._interrupted_owed:
                    self._mark_interrupted()
                if self.held:
                    self._flush_held()
                else:
                    # Rewrites page 1 of the file with the value it holds: a real write through the
                    # WAL that changes nothing gangd reads.
                    version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
                    self._db.execute(f"PRAGMA user_version={version}")
            except sqlite3.Error as exc:
                self._unwritable(exc)
                return False
            self.fault = None
            return True

    def _flush_held(self) -> None:
        """The held completions, oldest first (under the lock); each is removed once written."""
        for job_id in sorted(self.held):
            fields = self.held[job_id]
            values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?", [*values, job_id])
            del self.held[job_id]
        self.fault = None

    def _unwritable(self, exc: sqlite3.Error) -> JournalUnwritable:
        """The fault named (and remembered in `fault`); a failure that is not the host's is re-raised."""
        reason = journal_fault(exc, self.path)
        if reason is None:
            raise exc
        self.fault = reason
        return JournalUnwritable(reason)

    def allocate(self, record_id: int, board_id: str, entries: list[BoardData]) -> dict[str, str]:
        """The per-board values of one board (the policy: gangd/service/board_data.py), in one
        transaction with its job's record. Raises DataExhausted when a list has none left. With a
        line database the values come from it (LineUnavailable when it does not answer) and are
        kept here too."""
        line_values = None if self.line is None else self.line.allocate(record_id, board_id, entries)
        with self._lock:
            try:
                return self._allocate(record_id, board_id, entries, line_values)
            except sqlite3.Error as exc:
                raise self._unwritable(exc) from None

    def _allocate(
        self, record_id: int, board_id: str, entries: list[BoardData], line_values: dict[str, str] | None
    ) -> dict[str, str]:
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
            if self._db.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")  # durable on return (synchronous=FULL)
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
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
        """JournalUnwritable when it cannot be written: the rows stay in the outbox (the line
        database takes a repeated delivery as a no-op)."""
        with self._lock:
            try:
                self._db.executemany("UPDATE jobs SET delivered=1 WHERE id=?", [(i,) for i in ids])
            except sqlite3.Error as exc:
                raise self._unwritable(exc) from None

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
