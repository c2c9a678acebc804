"""`gangd sim`: start simulated boards by hand.

gangd sim --uart [--stage rom|flashloader] [--family NAME] [--fault SPEC ...]
    one board on a pseudo-terminal; prints its path; `blhost -p PATH` / `sdphost -p PATH` work
gangd sim --hub N [--fault SPEC ...] [--port-fault PORT=SPEC ...]
    a hub of N ports with a board in each; prints every hotplug event as a JSON line
gangd sim --hidraw [--hub N] [--stage ...] [--fault SPEC ...] [--port-fault PORT=SPEC ...]
    the hub's boards as emulated USB HID devices (/dev/hidrawN) in a umockdev testbed; prints
    `UMOCKDEV_DIR=<path>` once they are on the bus (hotplug events go to stderr as JSON lines).
    Programs run under `umockdev-wrapper` with that variable see the boards: `gangd scan`,
    `gangd run --config`, `blhost -u`, `sdphost -u`. `--root-ports` and `--controllers` place the
    ports as with --hub; each further controller is a PCI function of its own in the testbed's sysfs.
gangd sim --hub N | --hidraw  --replay FILE [--time-scale S]
    the hub's first port holds the board a gangd trace recorded (gangd/sim/replay.py), answering
    as it did; on exit, where the replay diverged (if it did), exit status 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TextIO

from gangd.cli.options import count, seconds
from gangd.config.family import UnknownFamilyError, load_family
from gangd.core.bus import USB_ADDRESSES, is_port_path, topology_problem
from gangd.core.events import PortEvent
from gangd.sim.board import FLASHLOADER, ROM, SimBoard
from gangd.sim.faults import FaultSpecError, parse_fault
from gangd.sim.hub import BoardFactory, SimHub, default_port_paths
from gangd.sim.nor_flash import DEFAULT_PART, HYPERFLASH_PART, PARTS
from gangd.sim.timing import TimingModel
from gangd.sim.uart import UartBoard


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sim", help="start simulated boards (a pty board, a hub, or emulated hidraw devices)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--uart", action="store_true", help="one board on a pseudo-terminal")
    where.add_argument(
        "--hub", type=count(1, USB_ADDRESSES - 1), metavar="N", help="a simulated hub of N ports, all filled"
    )
    parser.add_argument(
        "--root-ports",
        type=count(1, USB_ADDRESSES - 1),
        default=1,
        metavar="K",
        help="the hub's ports spread over K root ports (bandwidth domains)",
    )
    parser.add_argument(
        "--controllers",
        type=count(1, USB_ADDRESSES - 1),
        default=1,
        metavar="K",
        help="the root ports spread over K USB host controllers, one bus each; each controller "
        "enumerates one device at a time (default 1)",
    )
    parser.add_argument(
        "--bandwidth-budget",
        type=count(1),
        default=8,
        metavar="B",
        help="flashloader-stage boards per root port (default 8)",
    )
    parser.add_argument(
        "--hidraw",
        action="store_true",
        help="the hub's boards as emulated /dev/hidrawN devices (umockdev); prints UMOCKDEV_DIR=...",
    )
    parser.add_argument("--family", default="mimxrt1020", help="spsdk family name (default mimxrt1020)")
    parser.add_argument("--stage", choices=(ROM, FLASHLOADER), default=ROM)
    parser.add_argument(
        "--fault",
        type=fault_spec,
        action="append",
        default=[],
        metavar="SPEC",
        help="fault on the board(s), e.g. status:cmd=flash-erase-region,code=20106,nth=1",
    )
    parser.add_argument(
        "--port-fault",
        type=port_fault,
        action="append",
        default=[],
        metavar="PORT=SPEC",
        help="fault tied to a hub port, e.g. 1-1.3=status:cmd=write-memory,code=10004,p=0.5",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-scale", type=seconds, default=1.0, help="1 = real time per the timing model, 0 = instant"
    )
    parser.add_argument(
        "--hab-closed",
        action="store_true",
        help="the part's HAB is closed (SRK_HASH blank unless --fault otp:... presets it)",
    )
    parser.add_argument(
        "--flash-part",
        choices=sorted(PARTS),
        default=DEFAULT_PART,
        help=f"the FlexSPI flash on the board (default {DEFAULT_PART}; {HYPERFLASH_PART}: the RT1050 EVKB's HyperFlash)",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="the hub's first port holds the board a gangd trace recorded, answering as it did "
        "(timing scaled by --time-scale)",
    )
    parser.set_defaults(func=run)


def fault_spec(text: str) -> str:
    """A fault spec, checked (argparse names the option in front of the reason)."""
    try:
        parse_fault(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def port_fault(text: str) -> tuple[str, str]:
    """PORT=SPEC as (port path, checked spec)."""
    port, eq, spec = text.partition("=")
    if not eq or not is_port_path(port):
        raise argparse.ArgumentTypeError(f"{text!r}: expected PORT=SPEC with a port path, e.g. 1-1.3=hang")
    return port, fault_spec(spec)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class StopSignal:
    """SIGINT or SIGTERM, taken by the main thread with sigwait().

    With Python signal handlers, one SIGTERM was seen to leave `gangd sim --hidraw` running (3 of 4
    tries on a loaded machine, py-spy: main thread still in Event.wait; a second SIGTERM stopped it):
    the kernel may hand a process's signal to any thread that does not block it (here umockdev's
    GLib loop or a board), and CPython then only flags it for the main thread, which sleeps in an
    untimed lock wait and never runs the handler. Blocked in every thread (the mask is inherited by
    the threads started after this) and taken with sigwait(), the signal cannot go astray.
    Make it before any thread is started."""

    def __init__(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def wait(self) -> int:
        return signal.sigwait(STOP_SIGNALS)


def json_lines(stream: TextIO) -> Callable[[PortEvent], None]:
    """A hub subscriber printing each event as one JSON line on `stream`.

    The hub calls it from every port's thread at once. print() writes the text and its newline
    separately, so two events could share a line (`{...}{...}` then two newlines): a reader that
    parses lines failed on it and saw no event after (tests/hidraw's gangd-run test, under load).
    Each line is written whole, one writer at a time."""
    lock = threading.Lock()

    def emit(event: PortEvent) -> None:
        line = json.dumps(asdict(event)) + "\n"
        with lock:
            stream.write(line)
            stream.flush()

    return emit


def _fail(message: str) -> int:
    print(f"gangd sim: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    trace = None
    if args.replay:
        from gangd.trace.file import TraceError, read  # the replayed board's recording

        if args.uart:
            return _fail("--replay replays a USB (HID) trace: use it with --hub N or --hidraw")
        try:
            trace = read(args.replay)
        except TraceError as exc:
            return _fail(str(exc))
        args.family = trace.meta.get("family") or args.family
        args.hub = args.hub or (None if args.hidraw else 1)
    if args.hidraw and args.uart:
        return _fail("--hidraw is a hub of USB devices; it does not go with --uart")
    if not (args.uart or args.hub or args.hidraw):
        return _fail("say where the boards go: --uart, --hub N or --hidraw [--hub N]")
    problem = topology_problem(args.hub or 1, args.root_ports, "--hub", args.controllers)
    if problem and not args.uart:
        return _fail(problem)
    try:
        family = load_family(args.family)
    except UnknownFamilyError as exc:
        return _fail(f"--family: {exc}")
    if args.hidraw:
        from gangd.sim.hidraw import HidrawError, reexec_under_wrapper  # gi only on this path

        try:
            reexec_under_wrapper(args.argv)  # returns only when already under umockdev's preload
        except HidrawError as exc:
            return _fail(str(exc))
    port_faults: dict[str, list[str]] = {}
    for port, spec in args.port_fault:
        port_faults.setdefault(port, []).append(spec)
    timing = TimingModel(time_scale=args.time_scale)
    factory = BoardFactory(
        family,
        timing,
        seed=args.seed,
        faults=tuple(args.fault),
        stage=args.stage,
        hab_closed=args.hab_closed,
        flash_part=args.flash_part,
    )
    stop = StopSignal()
    if args.uart:
        with UartBoard(SimBoard(factory())) as board:
            print(board.path, flush=True)
            stop.wait()
        return 0
    ports = args.hub or 1
    unknown = set(port_faults) - set(default_port_paths(ports, args.root_ports, args.controllers))
    if unknown:
        return _fail(f"--port-fault names ports the hub does not have: {', '.join(sorted(unknown))}")
    boards = _boards(factory, trace, family, args.time_scale)
    if args.hidraw:
        return _run_hidraw(args, ports, port_faults, boards, stop)
    with SimHub(
        args.hub,
        port_faults=port_faults,
        seed=args.seed,
        root_ports=args.root_ports,
        flashloader_budget=args.bandwidth_budget,
        controllers=args.controllers,
    ) as hub:
        hub.subscribe(json_lines(sys.stdout))
        for path in hub.ports:
            hub.plug(path, boards())
        stop.wait()
    return _replay_outcome(hub)


def _boards(factory: BoardFactory, trace, family, time_scale: float):
    """The boards to plug, port by port: the replayed one first (with --replay), then fresh ones."""
    pending = []
    if trace is not None:
        from gangd.sim.replay import ReplayBoard

        pending.append(ReplayBoard(trace, family, time_scale))

    def next_board():
        return pending.pop(0) if pending else factory()

    return next_board


def _replay_outcome(hub) -> int:
    """With --replay: say where the replay diverged, if it did (exit 1)."""
    diverged = [board.divergence for board in hub.boards.values() if getattr(board, "divergence", None)]
    for line in diverged:
        print(f"gangd sim: {line}", file=sys.stderr)
    return 1 if diverged or hub.errors else 0


def _run_hidraw(
    args: argparse.Namespace,
    ports: int,
    port_faults: dict[str, list[str]],
    boards,
    stop: StopSignal,
) -> int:
    from gangd.sim.hidraw import HidrawError, HidrawHub

    try:
        hub = HidrawHub(
            ports, port_faults=port_faults, seed=args.seed, root_ports=args.root_ports, controllers=args.controllers
        )
    except HidrawError as exc:
        return _fail(str(exc))
    with hub:
        hub.subscribe(json_lines(sys.stderr))
        for path in hub.ports:
            hub.plug(path, boards())
        print(f"UMOCKDEV_DIR={hub.umockdev_dir}", flush=True)
        stop.wait()
    if hub.errors:
        print(f"gangd sim: the simulator crashed: {hub.errors!r}", file=sys.stderr)
        return 1
    return _replay_outcome(hub)
