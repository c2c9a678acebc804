"""`gangd trace show FILE`: a field trace's conversation, as blhost/sdphost would say it.

One line per command, response, data phase and event (udev add/remove, steps, power cycles,
clock fallbacks), with its time from the trace's start and its report number; `--format jsonl`
gives the same as one JSON object per line. A file that is not a gangd trace, or is cut short:
one line naming the file and what is wrong, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from gangd.trace import decode
from gangd.trace import file as tf


def add_parser(subparsers) -> None:
    trace = subparsers.add_parser("trace", help="field traces (pcapng): show one")
    verbs = trace.add_subparsers(dest="trace_command", required=True)
    show = verbs.add_parser("show", help="a trace's conversation, decoded with spsdk")
    show.add_argument("file", metavar="FILE", help="a trace written by gangd ([trace] or run --trace)")
    show.add_argument("--format", choices=("text", "jsonl"), default="text")
    show.set_defaults(func=show_command)


def show_command(args: argparse.Namespace) -> int:
    try:
        trace = tf.read(args.file)
    except tf.TraceError as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    if args.format == "jsonl":
        print(json.dumps({"kind": "trace", **trace.meta}, sort_keys=True))
        for line in decode.lines(trace):
            print(json.dumps(line.to_json(), sort_keys=True))
        return 0
    print(decode.header(trace))
    for line in decode.lines(trace):
        number = f"#{line.report}" if line.report is not None else ""
        arrow = {"out": "->", "in": "<-"}.get(line.direction or "", "==")
        print(f"{line.t:10.6f} {number:>6} {arrow} {line.text}")
    return 0
