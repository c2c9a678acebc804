"""The simulated boards for the benchmark, in a process of their own.

Reads one command per line on stdin and answers with JSON lines on stdout:

    plug [N]         a fresh board into every port (or the first N)        → {"type": "event", ...} per hotplug event
    unplug           every board out
    stats            → {"type": "stats", "boards": [{port, serial, latency_s, commands, flash_sha256}]}
    uart             one board on a pseudo-terminal        → {"type": "uart", "path": ...}
    quit

Devnodes are filesystem sockets, so the daemon in another process opens them like /dev/hidrawN.
latency_s is measured here, on one clock: from the board's first add event to its first command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time

from gangd.config.family import load_family
from gangd.sim import BoardFactory, SimBoard, SimHub, TimingModel
from gangd.sim.uart import UartBoard
from tools.bench import profiling

_lock = threading.Lock()


def emit(obj: dict) -> None:
    with _lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--image-address", type=lambda t: int(t, 0), default=0x6000_0000)
    parser.add_argument("--image-size", type=int, default=45056)
    parser.add_argument("--switch-interval", type=float, default=0.0)
    parser.add_argument("--root-ports", type=int, default=1, help="the ports spread over K root ports")
    parser.add_argument("--controllers", type=int, default=1, help="the root ports spread over K host controllers")
    parser.add_argument("--old-image", action="store_true", help="boards arrive holding an old image in the range")
    parser.add_argument("--profile", help="cProfile every thread into this pstats file (tools.bench.cost)")
    parser.add_argument("--flash-part", help="the boards' flash part (gangd/sim/nor_flash.py PARTS)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    family = load_family("mimxrt1020")
    factory = BoardFactory(family, TimingModel(time_scale=args.time_scale), seed=1)
    boards: list[SimBoard] = []
    uarts: list[UartBoard] = []
    if args.profile:
        profiling.start()
    with SimHub(args.ports, root_ports=args.root_ports, controllers=args.controllers) as hub:
        # vars(), not dataclasses.asdict: the event's fields are flat, and asdict's recursive copy
        # was a visible share of the simulator's CPU per board in tools.bench.cost.
        hub.subscribe(lambda event: emit({"type": "event", **vars(event)}))
        emit({"type": "ready"})
        for line in sys.stdin:
            command = line.strip()
            if command.startswith("plug"):
                count = int(command.split()[1]) if " " in command else len(hub.ports)
                paths = list(hub.ports)[:count]
                specs = [factory() for _ in paths]
                for spec in specs:
                    spec.flash_part = args.flash_part or spec.flash_part
                fresh = [SimBoard(spec) for spec in specs]
                if args.old_image:  # the range holds an old image: every sector needs its erase
                    for board in fresh:
                        board.flash.program(args.image_address - 0x6000_0000, bytes(args.image_size))
                # All of them at once (the batch's boards are plugged together), then each waited
                # for: plugging one after the other's enumeration would spread the batch's start
                # over the simulator's thread starts, which is the harness, not gangd.
                for path, board in zip(paths, fresh, strict=True):
                    boards.append(hub.plug(path, board, wait=False))
                for path in paths:
                    hub.port(path).wait_enumerated()
            elif command == "unplug":
                for path in hub.ports:
                    hub.unplug(path)
                emit({"type": "unplugged"})
            elif command == "stats":
                emit(
                    {
                        "type": "stats",
                        "cpu_s": time.process_time(),
                        "boards": [stats(b, args.image_address, args.image_size) for b in boards],
                    }
                )
                boards.clear()
            elif command == "uart":
                board = SimBoard(factory())
                uart = UartBoard(board).start()
                uarts.append(uart)
                boards.append(board)
                emit({"type": "uart", "path": uart.path})
            elif command == "quit":
                break
        for uart in uarts:
            uart.close()
        if hub.errors:
            emit({"type": "error", "errors": [repr(e) for e in hub.errors]})
    if args.profile:
        profiling.dump(args.profile)


def stats(board: SimBoard, address: int, size: int) -> dict:
    first = board.first_command_at
    return {
        "port": None,
        "serial": board.serial,
        "latency_s": None if first is None or board.first_enumerated_at is None else first - board.first_enumerated_at,
        "commands": len(board.log),
        "flash_sha256": hashlib.sha256(board.flash_image(address, size)).hexdigest(),
    }


if __name__ == "__main__":
    main()
