"""`gangd check-config FILE`: validate a configuration; the first mistake is one located line, exit 2."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter

from gangd.config.loader import ConfigError, load_config
from gangd.core.bus import root_port
from gangd.core.bus_floor import advice
from gangd.core.physics import Physics
from gangd.engine.floor import board_times
from gangd.io.topology import host_controllers
from gangd.service import logs


def add_parser(subparsers) -> None:
    check = subparsers.add_parser("check-config", help="validate a configuration file; exit 2 on the first mistake")
    check.add_argument("file")
    check.set_defaults(func=check_config_command)


def check_config_command(args: argparse.Namespace) -> int:
    logs.configure("warning", stream=sys.stderr)  # spsdk's database chatter stays out of the report
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    recipe = config.recipe
    print(f"{config.path}: ok")
    print(f"  family      {recipe.family.name}")
    ports = ", ".join(f"{p}={label}" for p, label in config.ports.items()) or "every port"
    print(f"  ports       {ports}")
    # The bus as this host wires it (sysfs): a bus not present here counts as a controller of its own.
    for line in advice(
        config.ports,
        host_controllers(config.ports),
        jumps=recipe.family.rom_protocol == "sdp",
        board=board_times(recipe, Physics()),
        budget=config.flashloaders_per_root_port,
    ):
        print(f"  bus         {line}")
    for domain, count in sorted(Counter(root_port(path) for path in config.ports).items()):
        if count > config.flashloaders_per_root_port:
            print(
                f"  warning     {count} ports share root port {domain}, whose USB bandwidth carries about "
                f"{config.flashloaders_per_root_port} flashloaders at once ([usb] flashloaders_per_root_port): "
                "gangd programs them in waves (spread them over more root ports)"
            )
    for warning in config.warnings:
        print(f"  warning     {warning}")
    if recipe.flashloader:  # an MCU-bootloader ROM needs none
        print(
            f"  flashloader {len(recipe.flashloader)} bytes at 0x{recipe.flashloader_address:08x}, "
            f"jump 0x{recipe.jump_address:08x} (an image vector table) sha256 {hashlib.sha256(recipe.flashloader).hexdigest()}"
        )
    print(
        f"  memory      id {recipe.memory_id}, options {', '.join(f'0x{w:08x}' for w in recipe.option_words)} at 0x{recipe.option_address:08x}"
    )
    geometry = recipe.geometry
    print(
        f"  geometry    sector {geometry.sector_size}, page {geometry.page_size} ({geometry.source}); "
        "the board's own answer replaces it before the first erase"
    )
    for image in recipe.images:
        print(f"  image       {len(image.data)} bytes at 0x{image.address:08x} sha256 {image.sha256}")
    print(
        f"  verify      {'read-back' if recipe.verify else 'off'}; final action {recipe.final_action}; "
        f"marginal boards {recipe.quality_marginal}"
    )
    print(f"  fuses       policy {recipe.fuses.policy}, {len(recipe.fuses.words)} words")
    sb = recipe.secure_boot
    if sb is not None:
        print(f"  secure boot SRK hash {sb.image.srk_hex} (from {sb.image.path}'s CSF; the flashloader's matches)")
        print(f"              SRK_HASH words 0x18..0x1f: {' '.join(f'{w.value:08x}' for w in sb.srk)}")
        print(f"              close {sb.close}, proof {sb.proof or 'none'}, locks {len(sb.locks)} words")
    for entry in recipe.board_data:
        where = (
            f"fuse {entry.fuse.name}"
            if entry.fuse
            else f"flash 0x{entry.address:08x} ({entry.encoding}, {entry.size} bytes)"
        )
        origin = (
            f"list {entry.list_file}"
            if entry.list_file
            else f"counter {entry.format!r} from {entry.start} step {entry.step}"
        )
        print(f"  board data  {entry.name}: {origin} -> {where}")
    return 0
