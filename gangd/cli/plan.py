"""`gangd plan CONFIG`: the recipe's plan as the sdphost/blhost command lines NXP's tools would run.

The lines are those of NXP's Secure Provisioning tool's log (`blhost -t MS -u VID,PID -j -- ...`),
in the order gangd runs them, each with its step's deadline as the tool's timeout. A line engineer
can compare them with the script they already know, or run them by hand against one board.
"""

from __future__ import annotations

import argparse
import sys

from gangd.config.family import FamilyInfo
from gangd.config.loader import ConfigError, load_config
from gangd.config.recipe import Recipe
from gangd.engine.plan import Fuses, Stage, StepName, plan, tool_lines


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="print a configuration's plan as sdphost/blhost command lines")
    parser.add_argument("config", metavar="CONFIG")
    parser.set_defaults(func=plan_command)


def _ids(family: FamilyInfo, stage: Stage) -> str:
    ids = family.rom_usb if stage == Stage.ROM or not family.flashloader_usb else family.flashloader_usb
    return f"0x{ids[0].vid:04X},0x{ids[0].pid:04X}" if ids else "VID,PID"


def render(recipe: Recipe) -> list[str]:
    steps = plan(recipe)
    geometry = recipe.geometry
    lines = [
        f"# {recipe.family.name}: {len(steps)} steps; deadline of each step as the tool's -t timeout",
        f"# geometry: sector {geometry.sector_size}, page {geometry.page_size} from {geometry.source}; "
        "the board's answer to get-property replaces it before the first erase",
    ]
    shown: set[StepName] = set()
    for line in tool_lines(steps):
        step = line.step
        if isinstance(step, Fuses) and step.name not in shown:
            lines.append(
                f"# fuses, policy {step.fuses.policy}: every word is read and judged first; only "
                "the words that need it are programmed, shielded from cancellation"
            )
        shown.add(step.name)
        text = line.render(_ids(recipe.family, step.stage), round(step.deadline_s * 1000))
        lines.append(text if line.tool else f"{text} (deadline {step.deadline_s:g} s)")
    return lines


def plan_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, need_flashloader=False)
    except ConfigError as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    print("\n".join(render(config.recipe)))
    return 0
