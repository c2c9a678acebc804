"""The `gangd` command line: one subcommand per job, each in the module that owns it."""

from __future__ import annotations

import logging
import sys

from gangd import __version__
from gangd.cli.options import OneLineParser


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="gangd", description="Gang programmer for NXP MCU boards over USB")
    parser.add_argument("--version", action="version", version=f"gangd {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    from gangd.cli import (
        check_config,
        db,
        explain,
        families,
        import_script,
        plan,
        port,
        records,
        run,
        scan,
        sim,
        status,
        trace,
        udev_rules,
        watch,
    )

    for verb in (
        run,
        status,
        records,
        db,
        check_config,
        families,
        scan,
        plan,
        import_script,
        explain,
        udev_rules,
        watch,
        port,
        sim,
        trace,
    ):
        verb.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # spsdk logs warnings of its own (its device database cache, for one) through a handler it
    # installs on stderr when its database is first used: a command's output is gangd's alone.
    # Commands that log (`gangd run`) switch logging back on in `logs.configure`. The switch is
    # process-wide: it is put back as it was when the command returns (main() called in-process).
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-run a command (gangd sim --hidraw)
        return args.func(args)
    except BrokenPipeError:  # `gangd records | head`
        return 0
    except Exception as exc:  # a bug in a verb: one line, no traceback (gangd run also writes a report)
        print(f"gangd: internal error: {type(exc).__name__}: {exc} (a bug: please report it)", file=sys.stderr)
        return 1
    finally:
        logging.disable(previous)


if __name__ == "__main__":
    sys.exit(main())
