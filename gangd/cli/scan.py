"""`gangd scan`: the NXP boards attached now, by port, with their ids, stage and device node; then
each root port (bandwidth domain) with the flashloader-stage slots its boards use, and the host
controllers (enumeration queues) they sit on with the boards per hour enumeration allows; with
`--config`, the floor of that line's recipe on the boards found, in boards per hour."""

from __future__ import annotations

import argparse
import sys

from gangd.config.family import UsbIds, family_names, isp_usb_ids
from gangd.config.loader import ConfigError, load_config
from gangd.core.bus import DEFAULT_BUDGET, root_port
from gangd.core.bus_floor import advice
from gangd.core.physics import Physics
from gangd.engine.floor import board_times
from gangd.io.topology import host_controllers
from gangd.io.udev import BoardFilter, UdevSource


def add_parser(subparsers) -> None:
    scan = subparsers.add_parser("scan", help="list the NXP boards attached, by port")
    scan.add_argument("--family", action="append", help="only these families (default: all in spsdk's database)")
    scan.add_argument(
        "--config", help="a line configuration: the floor of its recipe on the boards found, in boards per hour"
    )
    scan.set_defaults(func=scan_command)


def scan_command(args: argparse.Namespace) -> int:
    board, budget = None, DEFAULT_BUDGET
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"gangd: {exc}", file=sys.stderr)
            return 2
        board, budget = board_times(config.recipe, Physics()), config.flashloaders_per_root_port
    names = args.family or family_names()
    try:
        known = {name: isp_usb_ids(name) for name in names}
    except Exception as exc:
        print(f"gangd scan: {exc}", file=sys.stderr)
        return 2
    all_ids = {ids for rom, loader in known.values() for ids in rom + loader}
    events = UdevSource(BoardFilter(all_ids)).coldplug()
    if not events:
        print("no NXP boards attached")
        return 0
    print(f"{'PORT':<12} {'IDS':<10} {'STAGE':<12} {'FAMILIES':<30} {'DEVNODE':<16} SERIAL")
    domains: dict[str, list[str]] = {}
    for event in sorted(events, key=lambda e: e.port):
        ids = UsbIds(event.vid, event.pid)
        roms = [n for n, (rom, _) in known.items() if ids in rom]
        loaders = [n for n, (_, loader) in known.items() if ids in loader]
        stage, matching = ("flashloader", loaders) if loaders else ("rom", roms)
        names = ",".join(matching[:3]) + (f" +{len(matching) - 3}" if len(matching) > 3 else "")
        print(
            f"{event.port:<12} {event.ids:<10} {stage:<12} {names:<30} {event.devnode or '':<16} {event.serial or ''}"
        )
        domains.setdefault(root_port(event.port), []).append(stage)
    # Each root port is a bandwidth domain: about DEFAULT_BUDGET flashloaders fit at once.
    for domain, stages in sorted(domains.items()):
        print(
            f"root port {domain}: {len(stages)} boards, {stages.count('flashloader')} of about "
            f"{DEFAULT_BUDGET} flashloader-stage slots in use"
        )
    # Each host controller is an enumeration queue (a ROM that jumps: three enumerations a board).
    ports = [event.port for event in events]
    for line in advice(ports, host_controllers(ports), jumps=True, board=board, budget=budget):
        print(line)
    return 0
