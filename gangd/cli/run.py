"""`gangd run`: the station, on real boards (`--config`) or on a simulated hub (`--simulate N`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from gangd.cli.options import LOG_LEVELS, count, log_level, seconds
from gangd.config.address import DEFAULT_ADDRESS
from gangd.config.loader import MAX_WORKERS, ConfigError, load_config
from gangd.config.recipe import with_trace_dir
from gangd.core.bus import USB_ADDRESSES
from gangd.core.errors import JournalDamaged, JournalUnwritable
from gangd.service import crash, limits, logs, statedir
from gangd.service.daemon import run_world
from gangd.service.hardware import hardware_world
from gangd.service.http import AddressError, bind
from gangd.service.world import DaemonOptions, SimulationOptions

# Options that only mean something for simulated boards: given without --simulate they are refused
# rather than ignored. Their defaults are filled in once that is checked (None: not given).
SIMULATION_DEFAULTS = {"time_scale": 1.0, "replace_delay": 2.0, "seed": 0}
SIMULATION_ONLY = {
    "root_ports": "--root-ports",
    "controllers": "--controllers",
    "time_scale": "--time-scale",
    "replace_delay": "--replace-delay",
    "fault": "--fault",
    "fault_share": "--fault-share",
    "layout": "--layout",
    "seed": "--seed",
    "boards": "--boards",
    "port_fault": "--port-fault",
    "power_cycle": "--power-cycle",
    "replay": "--replay",
}


def add_parser(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the station: on real boards (--config) or simulated (--simulate)")
    run.add_argument("--config", metavar="FILE", help="TOML configuration (required on hardware)")
    run.add_argument(
        "--simulate",
        type=count(1, USB_ADDRESSES - 1),
        metavar="N",
        help="run on a simulated hub of N ports (with --config: its recipe and ports)",
    )
    run.add_argument(
        "--root-ports",
        type=count(1, USB_ADDRESSES - 1),
        metavar="K",
        help="simulation: the ports spread over K root ports (default 1)",
    )
    run.add_argument(
        "--controllers",
        type=count(1, USB_ADDRESSES - 1),
        metavar="K",
        help="simulation: the root ports spread over K USB host controllers, one bus each (default 1)",
    )
    run.add_argument("--time-scale", type=seconds, help="simulation speed (1 = real time, the default; 0 = instant)")
    run.add_argument("--replace-delay", type=seconds, help="simulated operator's seconds to swap a board (default 2)")
    run.add_argument("--fault", action="append", default=[], metavar="SPEC", help="fault on every simulated board")
    run.add_argument(
        "--fault-share",
        action="append",
        default=[],
        metavar="SPEC=FRACTION",
        help="simulation: the fault on that share of the boards, e.g. marginal-read:max-mhz=100=0.25",
    )
    run.add_argument(
        "--layout", metavar="ROWS", help='simulation: label and arrange the ports, e.g. "A1 A2 A3 A4 / B1 B2 B3 B4"'
    )
    run.add_argument("--seed", type=int, help="simulation: the seed of the boards' faults and timing (default 0)")
    run.add_argument(
        "--workers",
        type=count(0, MAX_WORKERS),
        metavar="N",
        help="run the boards' jobs in N worker processes, root ports shared among them "
        "(default: [station] workers, else 0: in gangd's own process)",
    )
    run.add_argument("--stop-grace", type=seconds, default=30.0, help="seconds running jobs get to stop on SIGTERM")
    run.add_argument("--log-level", type=log_level, default="info", help=", ".join(LOG_LEVELS))
    run.add_argument("--spsdk-log-level", type=log_level, default="warning", help="level of spsdk's own log lines")
    run.add_argument("--boards", type=count(1), metavar="N", help="simulation: the operator stops after N boards")
    run.add_argument(
        "--port-fault",
        action="append",
        default=[],
        metavar="PORT=SPEC",
        help="simulation: a fault tied to a hub port (a flaky port); PORT is its path or label",
    )
    run.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIRECTORY", "var"),
        help="where the board records live (systemd's StateDirectory; default ./var)",
    )
    run.add_argument(
        "--trace",
        metavar="DIR",
        help="keep each job's USB conversation as a pcapng file in DIR ([trace] keep/payload apply; default: failed jobs)",
    )
    run.add_argument(
        "--replay",
        metavar="FILE",
        help="simulation: the first port holds the board a gangd trace recorded, answering as it did",
    )
    run.add_argument(
        "--power-cycle", action="store_true", default=None, help="simulation: allow power-cycling hub ports"
    )
    run.add_argument(
        "--sim-socket", metavar="PATH", help="with --config: boards from a simulated hub in another process (the soak)"
    )
    run.add_argument(
        "--http-address",
        "--metrics-address",
        dest="metrics_address",
        metavar="HOST:PORT",
        help=f"where the station page, /status and /metrics listen (default: config, else {DEFAULT_ADDRESS})",
    )
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, spsdk_level=args.spsdk_log_level)
    config = None
    plan = None
    try:
        if args.config:
            config = load_config(args.config)
            if args.trace:
                config = dataclasses.replace(config, recipe=with_trace_dir(config.recipe, args.trace))
        if args.simulate is None and config is None:
            raise ConfigError("run needs --config FILE (or --simulate N)")
        simulation = simulation_options(args)
        if simulation is not None:
            from gangd.service.simulated import plan_simulation  # simulation only

            plan = plan_simulation(simulation, config)  # a bad trace file is a ValueError too
    except (ConfigError, ValueError) as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    daemon = DaemonOptions(
        args.state_dir,
        args.stop_grace,
        args.config,
        args.trace,
        args.workers,
        args.log_level,
        args.spsdk_log_level,
    )
    # The environment, before anything starts: one line naming the problem and the setting.
    try:
        workers = args.workers if args.workers is not None else (config.workers if config else 0)
        limits.check_fd_limit(
            args.simulate if simulation is not None else len(config.ports) if config else None, workers
        )
    except limits.LimitError as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    address = args.metrics_address or (config.http_address if config else DEFAULT_ADDRESS)
    setting = "--http-address" if args.metrics_address or config is None else f"[http] address in {config.path}"
    lock = None
    try:
        lock = statedir.hold(
            args.state_dir, "--state-dir" + (" (StateDirectory=)" if "STATE_DIRECTORY" in os.environ else "")
        )
        sock = bind(address, setting)
    except (statedir.StateDirError, AddressError) as exc:
        if lock is not None:
            os.close(lock)
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    try:
        if simulation is not None:
            from gangd.service.simulated import simulated_world

            assert plan is not None  # made above
            station = run_world(simulated_world(config, simulation, plan, args.trace), daemon, sock)
            print(f"gangd: {station.jobs_finished} boards, {station.counts['success']} programmed", file=sys.stderr)
            return 0
        assert config is not None  # checked above: hardware needs --config
        if args.sim_socket:  # the soak: boards from a simulated hub in another process
            from gangd.service.simulated import socket_world

            run_world(socket_world(config, args.sim_socket), daemon, sock)
        else:
            run_world(hardware_world(config), daemon, sock)
        return 0
    except JournalDamaged as exc:  # a restart cannot mend it: exit 2 stops systemd's loop
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    except JournalUnwritable as exc:  # the journal could not even be opened: a restart may (disk freed)
        print(f"gangd: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line and a crash report, never a traceback on the console
        return crash.report(exc, args.state_dir, args.config)
    finally:
        sock.close()
        os.close(lock)


def simulation_options(args: argparse.Namespace) -> SimulationOptions | None:
    """`--simulate N` and its options, typed; None for real boards, where they are refused rather
    than ignored (a ValueError naming them)."""
    if args.simulate is None:
        given = [option for name, option in SIMULATION_ONLY.items() if getattr(args, name) not in (None, [])]
        if given:
            raise ValueError(f"{', '.join(given)}: for simulated boards only (add --simulate N)")
        return None
    if args.sim_socket:
        raise ValueError("--sim-socket: the boards come from --simulate; give one or the other")

    def or_default(name: str):
        value = getattr(args, name)
        return SIMULATION_DEFAULTS[name] if value is None else value

    return SimulationOptions(
        ports=args.simulate,
        root_ports=args.root_ports,
        controllers=args.controllers,
        time_scale=or_default("time_scale"),
        replace_delay_s=or_default("replace_delay"),
        seed=or_default("seed"),
        boards=args.boards,
        faults=tuple(args.fault),
        fault_shares=tuple(args.fault_share),
        port_faults=tuple(args.port_fault),
        layout=args.layout,
        power_cycle=bool(args.power_cycle),
        replay=args.replay,
    )
