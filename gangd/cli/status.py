"""`gangd status`: each port's state, read from a running gangd's /status."""

from __future__ import annotations

import argparse
import sys

from gangd.config.address import DEFAULT_ADDRESS, parse_address


def add_parser(subparsers) -> None:
    status = subparsers.add_parser("status", help="print each port's state from a running gangd's /status")
    status.add_argument("--address", default=DEFAULT_ADDRESS, metavar="HOST:PORT")
    status.set_defaults(func=status_command)


def status_command(args: argparse.Namespace) -> int:
    import json
    import urllib.request

    try:
        host, port = parse_address(args.address)
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5) as response:
            status = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"gangd status: cannot read http://{args.address}/status: {exc}", file=sys.stderr)
        return 2
    print(f"gangd {status['version']}, up {status['uptime_s']:.0f} s{' (stopping)' if status['stopping'] else ''}")
    print(f"{'PORT':<10} {'LABEL':<8} {'STATE':<15} {'STEP':<17} {'PROGRESS':>8}  {'LAST':<9} {'OK':>5} {'FAIL':>5}")
    for p in status["ports"]:
        counts = p["counts"]
        print(
            f"{p['port']:<10} {p['label']:<8} {p['state']:<15} {(p['step'] or ''):<17} {p['progress']:>8.0%}  "
            f"{(p['last_result'] or ''):<9} {counts.get('success', 0):>5} {counts.get('failed', 0):>5}"
        )
    return 0
