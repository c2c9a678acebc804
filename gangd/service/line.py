"""The line's PostgreSQL database: every station's finished records, and per-board data for the line.

The station's SQLite store stays the journal: a job's row is written there first, and a station
programs on while the network or the database is away. Each finished row is then delivered from
the outbox (`RecordStore.pending()`: finished rows not yet delivered, in local id order, stopping
at the first row still running) by `Outbox.run`: at least once, idempotent by (station, local id),
in order per station, with backoff while the database is away.

With a line database, per-board values are allocated here, in one PostgreSQL transaction per
board under a per-name advisory lock, so no two stations ever hand out the same value. There is no
block of values pre-allocated per station: a value taken in advance and never used would be a gap
in the serial numbers, and a station that died holding a block would strand it; jobs that need a
value wait while the database is away (the station says so on every port), jobs that need none go on.

The schema is versioned (`gangd_schema`) and created or migrated by `gangd db upgrade` (and by
every station when it connects).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import structlog
import trio

from gangd.config.loader import LineSettings
from gangd.config.recipe import BoardData
from gangd.core.errors import JournalUnwritable, LineUnavailable
from gangd.service import board_data
from gangd.service.records import COLUMNS

log = structlog.get_logger("gangd.line")

# Each entry takes the schema from version N to N+1; never edit a released one, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE records (
        station         text NOT NULL,
        local_id        bigint NOT NULL,
        port            text NOT NULL,
        label           text NOT NULL,
        serial          text,
        board_id        text,
        family          text NOT NULL,
        images          jsonb NOT NULL,
        started         timestamptz NOT NULL,
        finished        timestamptz,
        result          text NOT NULL,
        step            text,
        reason          text,
        status          integer,
        steps           jsonb NOT NULL,
        attempts        jsonb NOT NULL,
        fuses           jsonb NOT NULL,
        flash_clock_mhz integer,
        marginal        boolean NOT NULL,
        diagnoses       jsonb NOT NULL,
        board_data      jsonb NOT NULL,
        delivered       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (station, local_id)
    );
    CREATE INDEX records_board ON records (board_id);
    CREATE INDEX records_started ON records (started);
    CREATE TABLE board_data (
        name            text NOT NULL,
        value           text NOT NULL,
        seq             bigint NOT NULL,
        board_id        text NOT NULL,
        station         text NOT NULL,
        local_id        bigint NOT NULL,
        allocated       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, value),
        UNIQUE (name, board_id)
    );
    """,
    # 2: the status code's explanation apart from the reason, and the secure-boot stage outcomes.
    """
    ALTER TABLE records ADD COLUMN explanation text;
    ALTER TABLE records ADD COLUMN secure_boot jsonb NOT NULL DEFAULT '[]'::jsonb;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# The journal's columns the line keeps: all but the local row id and the station, which key it there.
RECORD_COLUMNS = tuple(column for column in COLUMNS if column not in ("id", "station"))
JSON_COLUMNS = {"images", "steps", "attempts", "fuses", "diagnoses", "board_data", "secure_boot"}


def password(settings: LineSettings) -> str | None:
    if settings.password_file:
        with open(settings.password_file) as handle:
            return handle.read().strip()
    return os.environ.get(settings.password_env)


class LineDatabase:
    """One connection to the line database, shared by the station's worker threads under a lock;
    reconnected after any failure. Every method is blocking (run it in a worker thread)."""

    def __init__(self, settings: LineSettings, station: str, connect_timeout_s: float = 3.0) -> None:
        self.settings = settings
        self.station = station
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.settings.database,
                password=password(self.settings),
                connect_timeout=max(1, int(self.connect_timeout_s)),
                options="-c statement_timeout=10000",
                autocommit=True,
            )
            self._upgrade(self._conn)
        return self._conn

    def _run(self, body: Callable[[Any], Any]) -> Any:
        """`body(connection)` in one transaction; any database failure is LineUnavailable."""
        import psycopg
        import psycopg.errors

        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    return body(conn)
            except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientResources) as exc:
                # It answers but takes no writes (a read-only standby after a failover, a full disk:
                # SQLSTATE 25006 and class 53, PostgreSQL's errcodes.txt): held like an outage.
                self._drop()
                raise LineUnavailable(f"line database refuses writes: {_first_line(exc)}") from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise LineUnavailable(f"line database unreachable: {_first_line(exc)}") from None

    def upgrade(self) -> int:
        """Create or migrate the schema; returns the version now in force."""
        return int(self._run(lambda conn: SCHEMA_VERSION))

    @staticmethod
    def _upgrade(conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(72217)")  # one migrating station at a time
            conn.execute("CREATE TABLE IF NOT EXISTS gangd_schema (version integer NOT NULL)")
            row = conn.execute("SELECT version FROM gangd_schema").fetchone()
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"the line database's schema is version {version}, newer than this gangd's")
            for migration in MIGRATIONS[version:]:
                conn.execute(migration)
            if row is None:
                conn.execute("INSERT INTO gangd_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            else:
                conn.execute("UPDATE gangd_schema SET version=%s", (SCHEMA_VERSION,))

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1"))

    def deliver(self, rows: list[dict[str, Any]]) -> int:
        """Insert finished local rows; a row already there (a delivery repeated after a crash) is
        left as it is. Returns how many were new."""
        columns = ", ".join(("station", "local_id", *RECORD_COLUMNS))
        marks = ", ".join(["%s", "%s"] + [_mark(c) for c in RECORD_COLUMNS])
        statement = f"INSERT INTO records ({columns}) VALUES ({marks}) ON CONFLICT (station, local_id) DO NOTHING"

        def body(conn: Any) -> int:
            new = 0
            for row in rows:
                values = [self.station, row["id"]] + [_value(c, row[c]) for c in RECORD_COLUMNS]
                new += conn.execute(statement, values).rowcount
            return new

        return int(self._run(body))

    def allocate(self, local_id: int, board_id: str, entries: list[BoardData]) -> dict[str, str]:
        """The board's values from the line (the policy: gangd/service/board_data.py): its own if it
        got them before (at any station), else the next unused ones; one transaction, one advisory
        lock per name."""

        def body(conn: Any) -> dict[str, str]:
            return board_data.allocate(_Allocations(conn, self.station, local_id), board_id, entries, " on the line")

        result: dict[str, str] = self._run(body)
        return result

    def records(
        self,
        board_id: str | None = None,
        serial: str | None = None,
        station: str | None = None,
        port: str | None = None,
        result: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[dict[str, Any]]:
        """The line's records, oldest first: `gangd records --line`."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("board_id", board_id), ("station", station), ("result", result)):
            if value:
                conditions.append(f"{column}=%s")
                params.append(value)
        if serial:
            conditions.append("(serial=%s OR board_data::text LIKE %s)")
            params += [serial, f'%"{serial}"%']
        if port:
            conditions.append("(port=%s OR label=%s)")
            params += [port, port]
        if since is not None:
            conditions.append("started >= to_timestamp(%s)")
            params.append(since)
        if until is not None:
            conditions.append("started < to_timestamp(%s)")
            params.append(until)
        columns = ", ".join(
            ["station", "local_id"]
            + [f"extract(epoch from {c})::float8" if c in ("started", "finished") else c for c in RECORD_COLUMNS]
        )
        query = f"SELECT {columns} FROM records"
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY started, station, local_id"
        rows = self._run(lambda conn: conn.execute(query, params).fetchall())
        return [dict(zip(("station", "local_id", *RECORD_COLUMNS), row)) for row in rows]


class _Allocations:
    """board_data.Allocations over the line's PostgreSQL table, inside allocate()'s transaction."""

    def __init__(self, conn: Any, station: str, local_id: int) -> None:
        self._conn = conn
        self._station = station
        self._local_id = local_id

    def lock(self, name: str) -> None:
        # Per name, until the transaction ends: no two stations hand out the same value.
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("gangd board_data " + name,))

    def owned(self, name: str, board_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT value FROM board_data WHERE name=%s AND board_id=%s", (name, board_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def last_seq(self, name: str) -> int | None:
        last = self._conn.execute("SELECT max(seq) FROM board_data WHERE name=%s", (name,)).fetchone()[0]
        return None if last is None else int(last)

    def used(self, name: str) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT value FROM board_data WHERE name=%s", (name,))}

    def record(self, name: str, value: str, seq: int, board_id: str) -> None:
        self._conn.execute(
            "INSERT INTO board_data (name, value, seq, board_id, station, local_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (name, value, seq, board_id, self._station, self._local_id),
        )


def _mark(column: str) -> str:
    if column in ("started", "finished"):
        return "to_timestamp(%s)"
    if column in JSON_COLUMNS:
        return "%s::jsonb"
    return "%s"


def _value(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return json.dumps(value)
    if column == "marginal":
        return bool(value)
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class LineState:
    """Whether the line database answered last time, for the station (jobs that need a value wait
    while it is away) and the status page. Lives in the trio thread."""

    def __init__(self) -> None:
        self.available = True
        self.reason: str | None = None
        self._back = trio.Event()

    def failed(self, reason: str) -> None:
        if self.available:
            log.error("line database unreachable: jobs that need per-board data wait for it", reason=reason)
        self.available, self.reason = False, reason

    def answered(self) -> None:
        if not self.available:
            log.info("line database reachable again")
        self.available, self.reason = True, None
        self._back.set()
        self._back = trio.Event()

    async def wait_available(self) -> None:
        while not self.available:
            await self._back.wait()


class Outbox:
    """Delivers the station's finished records to the line database, in local id order."""

    def __init__(self, store: Any, line: LineDatabase, state: LineState, batch: int = 200) -> None:
        self.store = store
        self.line = line
        self.state = state
        self.batch = batch
        self.delivered = 0
        self._wake = trio.Event()

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        backoff = 0.5
        while True:
            try:
                await self.drain()
            except LineUnavailable as exc:
                self.state.failed(str(exc))
                with trio.move_on_after(backoff):
                    await trio.sleep_forever()
                backoff = min(backoff * 2, 5.0)
                continue
            except JournalUnwritable:  # delivered, not yet marked: delivered again (a no-op) later
                with trio.move_on_after(backoff):
                    await trio.sleep_forever()
                backoff = min(backoff * 2, 5.0)
                continue
            self.state.answered()
            backoff = 0.5
            with trio.move_on_after(2.0):
                await self._wake.wait()
            self._wake = trio.Event()

    async def flush(self) -> None:
        """One last delivery at shutdown; what the database does not take waits for the next start."""
        try:
            await self.drain()
        except (LineUnavailable, JournalUnwritable) as exc:
            log.warning("records left in the outbox for the next start", reason=str(exc))

    async def drain(self) -> None:
        """Deliver every pending row (probe the database when there is none)."""
        while True:
            rows = await trio.to_thread.run_sync(self.store.pending, self.batch)
            if not rows:
                await trio.to_thread.run_sync(self.line.ping)
                return
            await trio.to_thread.run_sync(self.line.deliver, rows)
            ids = [row["id"] for row in rows]
            await trio.to_thread.run_sync(self.store.mark_delivered, ids)
            self.delivered += len(ids)
            log.debug("records delivered to the line database", count=len(ids), last=ids[-1])
