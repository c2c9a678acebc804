"""`gangd explain CODE`: an MCU bootloader status code (or an SDP ROM HAB word) in words, laid out.

The words come from the lookup in `gangd.engine.explain` (the data in gangd/engine/explanations.toml);
this module parses the command line and lays the explanation out in WIDTH columns.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from gangd.engine.explain import DEFAULT_FAMILY, Explanation, description, explain

WIDTH = 100


def parse_code(text: str) -> int:
    """A status code in decimal or 0x-hex. Raises ValueError for anything else."""
    text = text.strip()
    if text.lower().startswith(("0x", "-0x")):
        return int(text, 16)
    return int(text, 10)


def render(exp: Explanation, description: str) -> str:
    """The text `gangd explain` prints, wrapped to WIDTH columns."""
    indent = " " * 10

    def block(label: str, text: str) -> list[str]:
        return textwrap.wrap(
            text,
            WIDTH,
            initial_indent=f"{label:<10}",
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )

    def bullets(label: str, items: tuple[str, ...]) -> list[str]:
        lines: list[str] = []
        for i, item in enumerate(items):
            first = f"{label if i == 0 else '':<10}- "
            lines += textwrap.wrap(
                item,
                WIDTH,
                initial_indent=first,
                subsequent_indent=indent + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        return lines

    title = f"{exp.code} ({exp.code:#x}) {exp.name} — {description}."
    header = textwrap.wrap(title, WIDTH, subsequent_indent=indent, break_long_words=False)
    lines = header + block("meaning", exp.meaning) + bullets("causes", exp.causes) + bullets("remedies", exp.remedies)
    lines += block("gangd", f"{exp.recovery_class}: {exp.action}")
    return "\n".join(lines) + "\n"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="explain an MCU bootloader status code and gangd's recovery")
    parser.add_argument("code", metavar="CODE", help="status code, decimal or 0x-hex (e.g. 20106 or 0x4e8a)")
    parser.add_argument("--family", default=DEFAULT_FAMILY, help=f"spsdk family name (default {DEFAULT_FAMILY})")
    parser.set_defaults(func=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    from gangd.config.family import family_names

    if args.family not in family_names():
        print(f"gangd: unknown family {args.family!r}: not in spsdk's device database", file=sys.stderr)
        return 2
    try:
        code = parse_code(args.code)
    except ValueError:
        print(f"gangd: {args.code!r} is not a number: give a status code in decimal or 0x-hex", file=sys.stderr)
        return 2
    try:
        exp = explain(code, args.family)
    except KeyError:
        print(f"gangd: unknown status code {code} ({code:#x}): spsdk does not know it", file=sys.stderr)
        return 2
    sys.stdout.write(render(exp, description(code)))
    return 0
