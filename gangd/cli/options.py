"""Command-line values parsed into typed values before anything starts.

Each function is an argparse `type=`: a bad value ends the command with one line naming the option
and what it takes (argparse prefixes the option: "argument --time-scale: ..."), exit status 2, no
traceback. `OneLineParser` makes argparse's own complaints one line too.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from typing import NoReturn

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (then exit 2), not usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def count(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number from `minimum` (to `maximum`)."""
    wanted = f"a whole number from {minimum}" + (f" to {maximum}" if maximum is not None else " up")

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {wanted}")
        return value

    return parse


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds (also a time scale: 0 = instant)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number, 0 or more")
    return value


def log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS or not isinstance(logging.getLevelName(level.upper()), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def fail(prog: str, message: str) -> int:
    """One line naming the problem and the setting, for checks across options: exit status 2."""
    print(f"{prog}: {message}", file=sys.stderr)
    return 2
