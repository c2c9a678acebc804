"""`gangd records`: list or export the board records (table, CSV, JSON lines)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

from gangd.core.errors import JournalDamaged, JournalUnwritable
from gangd.service.records import RecordStore, export


def add_parser(subparsers) -> None:
    records = subparsers.add_parser("records", help="list or export the board records")
    records.add_argument("--state-dir", default=os.environ.get("STATE_DIRECTORY", "var"))
    records.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    records.add_argument("--port", help="only this port (path or label)")
    records.add_argument("--result", help="only this result (success, failed, removed, stopped, interrupted)")
    records.add_argument(
        "--check", action="store_true", help="run SQLite's integrity check on the journal: exit 0 if sound, 2 if not"
    )
    line = records.add_argument_group("the line's records (PostgreSQL, [line] database of --config)")
    line.add_argument("--line", action="store_true", help="query the line database instead of this station's")
    line.add_argument("--config", metavar="FILE", help="the station configuration naming the line database")
    line.add_argument("--board", metavar="ID", help="only this board identity (UniqueDeviceIdent)")
    line.add_argument("--serial", help="only the board with this USB serial or per-board value")
    line.add_argument("--station", help="only this station")
    line.add_argument("--since", metavar="TIME", help="started at or after (ISO 8601, e.g. 2026-11-25T08:00)")
    line.add_argument("--until", metavar="TIME", help="started before (ISO 8601)")
    records.set_defaults(func=records_command)


def line_records_command(args: argparse.Namespace) -> int:
    from gangd.config.loader import ConfigError, load_config
    from gangd.core.errors import LineUnavailable
    from gangd.service.line import LineDatabase

    try:
        if not args.config:
            raise ConfigError("--line needs --config FILE (its [line] database)")
        config = load_config(args.config, need_flashloader=False)
        if config.line is None:
            raise ConfigError(f"{config.path}: line: no [line] database in this configuration")
        since = datetime.fromisoformat(args.since).timestamp() if args.since else None
        until = datetime.fromisoformat(args.until).timestamp() if args.until else None
    except (ConfigError, ValueError) as exc:
        print(f"gangd records: {exc}", file=sys.stderr)
        return 2
    line = LineDatabase(config.line, config.station_name)
    try:
        rows = line.records(
            board_id=args.board,
            serial=args.serial,
            station=args.station,
            port=args.port,
            result=args.result,
            since=since,
            until=until,
        )
    except LineUnavailable as exc:
        print(f"gangd records: {exc}", file=sys.stderr)
        return 1
    finally:
        line.close()
    if args.format == "jsonl":
        sys.stdout.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
        return 0
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["station", "local_id"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})
        return 0
    print(
        f"{'STATION':<12} {'ID':>5} {'PORT':<10} {'BOARD':<17} {'RESULT':<11} {'STEP':<16} {'MHZ':>4} {'DATA':<20}  REASON"
    )
    for row in rows:
        clock = f"{row['flash_clock_mhz']}{'*' if row['marginal'] else ''}" if row["flash_clock_mhz"] else ""
        data = " ".join(f"{k}={v}" for k, v in row["board_data"].items())
        print(
            f"{row['station']:<12} {row['local_id']:>5} {row['port']:<10} {(row['board_id'] or row['serial'] or ''):<17} "
            f"{row['result']:<11} {(row['step'] or ''):<16} {clock:>4} {data:<20}  {row['reason'] or ''}"
        )
    return 0


def records_command(args: argparse.Namespace) -> int:
    if args.line:
        return line_records_command(args)
    path = Path(args.state_dir) / "records.sqlite"
    if not path.exists():
        print(f"gangd records: no records at {path}", file=sys.stderr)
        return 2
    try:
        store = RecordStore(path)
    except (JournalDamaged, JournalUnwritable) as exc:
        print(f"gangd records: {exc}", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = store.integrity()
            for problem in problems:
                print(f"{path}: {problem}")
            print(f"{path}: {'damaged' if problems else 'ok'}", file=sys.stderr)
            return 2 if problems else 0
        rows = store.jobs(port=args.port, result=args.result)
    except sqlite3.DatabaseError as exc:  # a page damaged past the header, met while reading
        print(f"gangd records: {path}: damaged ({exc}); run gangd records --check", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.format != "table":
        sys.stdout.write(export(rows, args.format))
        return 0
    # MHZ: the flash read clock the board was programmed at; "*" marks a marginal board (below the recipe's).
    # DATA: the per-board values (serial numbers, MAC addresses) the board got.
    print(
        f"{'ID':>5} {'PORT':<10} {'LABEL':<6} {'BOARD':<17} {'RESULT':<11} {'STEP':<16} {'TRIES':>5} {'MHZ':>4} "
        f"{'DATA':<20}  REASON"
    )
    for row in rows:
        clock = f"{row['flash_clock_mhz']}{'*' if row['marginal'] else ''}" if row["flash_clock_mhz"] else ""
        data = " ".join(f"{k}={v}" for k, v in row["board_data"].items())
        print(
            f"{row['id']:>5} {row['port']:<10} {row['label']:<6} {(row['board_id'] or row['serial'] or ''):<17} "
            f"{row['result']:<11} {(row['step'] or ''):<16} {len(row['attempts']):>5} {clock:>4} {data:<20}  "
            f"{row['reason'] or ''}"
        )
    return 0
