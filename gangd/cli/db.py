"""`gangd db upgrade`: create or migrate the line database's schema (versioned, see gangd/service/line.py)."""

from __future__ import annotations

import argparse
import sys

from gangd.config.loader import ConfigError, load_config
from gangd.core.errors import LineUnavailable


def add_parser(subparsers) -> None:
    db = subparsers.add_parser("db", help="the line database (PostgreSQL): create or migrate its schema")
    db.add_argument("action", choices=("upgrade",), help="upgrade: create the schema or migrate it to this gangd's")
    db.add_argument("--config", metavar="FILE", required=True, help="the station configuration naming [line] database")
    db.set_defaults(func=db_command)


def db_command(args: argparse.Namespace) -> int:
    from gangd.service.line import LineDatabase

    try:
        config = load_config(args.config, need_flashloader=False)
        if config.line is None:
            raise ConfigError(f"{config.path}: line: no [line] database in this configuration")
    except ConfigError as exc:
        print(f"gangd db: {exc}", file=sys.stderr)
        return 2
    line = LineDatabase(config.line, config.station_name)
    try:
        version = line.upgrade()
    except LineUnavailable as exc:
        print(f"gangd db: {exc}", file=sys.stderr)
        return 1
    finally:
        line.close()
    print(f"gangd db: the line database's schema is at version {version}")
    return 0
