"""`gangd records`: list or export the board records (table, CSV, JSON lines)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gangd.service.records import RecordStore, export


def add_parser(subparsers) -> None:
    records = subparsers.add_parser("records", help="list or export the board records")
    records.add_argument("--state-dir", default=os.environ.get("STATE_DIRECTORY", "var"))
    records.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    records.add_argument("--port", help="only this port (path or label)")
    records.add_argument("--result", help="only this result (success, failed, removed, stopped, interrupted)")
    records.set_defaults(func=records_command)


def records_command(args: argparse.Namespace) -> int:
    path = Path(args.state_dir) / "records.sqlite"
    if not path.exists():
        print(f"gangd records: no records at {path}", file=sys.stderr)
        return 2
    store = RecordStore(path)
    rows = store.jobs(port=args.port, result=args.result)
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
