"""The composition root of a simulated line: the station on the simulated hub, with an operator.

The only product module (with `gangd/cli/sim.py`) that imports `gangd.sim`: everything above the
board source is the same code as on hardware (`app.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

import trio

from gangd.cli.options import topology_problem
from gangd.config.loader import GAP, Config, Layout, default_station_name, parse_layout_text, resolve_layout
from gangd.config.recipe import builtin_rt1020, with_trace_dir
from gangd.core.bus import DEFAULT_BUDGET
from gangd.core.station import Station
from gangd.service.app import close_records, http_server, open_records, reloader, serve
from gangd.service.metrics import Metrics
from gangd.service.notify import Notifier
from gangd.sim import BoardFactory, Operator, SimHub, TimingModel
from gangd.sim.faults import FaultSpecError, parse_fault
from gangd.sim.hub import default_port_paths
from gangd.sim.images import build_flashloader_image
from gangd.sim.socket_source import SimSocketPower, SimSocketSource
from gangd.sim.source import SimHubSource, SimPortPower


def attach_sim_socket(station: Station, path: str, power_cycle: bool):
    """Boards from a simulated hub served by another process (the soak); returns the board source."""
    remote = SimSocketSource(path)
    station.power = SimSocketPower(remote) if power_cycle else None
    station.listeners.append(lambda result: remote.finished(result.port, result.result))
    return remote.run


def _fault(option: str, item: str, spec: str) -> str:
    """A fault spec checked now, so a typo is one line before anything starts."""
    try:
        parse_fault(spec)
    except FaultSpecError as exc:
        reason = str(exc).removeprefix(f"fault {spec.strip()!r}: ")
        raise ValueError(f"{option} {item!r}: {reason}") from None
    return spec


def fault_shares(items: list[str]) -> list[tuple[str, float]]:
    """`--fault-share SPEC=FRACTION` (the fraction after the last '=') as checked (spec, fraction)."""
    shares = []
    for item in items:
        spec, sep, fraction = item.rpartition("=")
        try:
            value = float(fraction)
        except ValueError:
            value = -1.0
        if not sep or not spec or not 0.0 <= value <= 1.0:
            raise ValueError(f"--fault-share {item!r}: expected SPEC=FRACTION with a fraction from 0 to 1")
        shares.append((_fault("--fault-share", item, spec), value))
    return shares


@dataclass(frozen=True)
class SimulationPlan:
    """`gangd run --simulate` options, checked and typed before anything starts."""

    labels: dict[str, str | None]  # port path -> label (None: the path is the label)
    layout: Layout | None
    faults: tuple[str, ...]
    shares: list[tuple[str, float]]
    port_faults: dict[str, list[str]]


def plan_simulation(args: argparse.Namespace, config: Config | None) -> SimulationPlan:
    """Every simulation option checked against the others and the configuration; a ValueError
    is one line naming the option and what to change."""
    if config is not None and config.ports:
        if args.simulate != len(config.ports):
            raise ValueError(
                f"--simulate {args.simulate}: {config.path} lists {len(config.ports)} ports in [station.ports]; "
                f"say --simulate {len(config.ports)}"
            )
        if args.root_ports is not None:
            raise ValueError(f"--root-ports: the ports and their root ports come from [station.ports] in {config.path}")
        labels: dict[str, str | None] = dict(config.ports)
    else:
        root_ports = args.root_ports or 1
        problem = topology_problem(args.simulate, root_ports, "--simulate")
        if problem:
            raise ValueError(problem)
        labels = dict.fromkeys(default_port_paths(args.simulate, root_ports))
    faults = tuple(_fault("--fault", spec, spec) for spec in args.fault)
    shares = fault_shares(args.fault_share)
    layout = config.layout if config else None
    if args.layout is not None:
        rows = parse_layout_text(args.layout)
        if config is None:  # the layout names the simulated ports, in port order
            names = [name for row in rows for name in row if name != GAP]
            if len(names) != len(labels):
                raise ValueError(f"--layout names {len(names)} ports, --simulate has {len(labels)}")
            labels = dict(zip(labels, names))
        try:
            layout = resolve_layout(rows, {path: label or path for path, label in labels.items()})
        except ValueError as exc:
            raise ValueError(f"--layout: {exc}") from None
    port_faults: dict[str, list[str]] = {}
    by_name = {**{label: path for path, label in labels.items() if label}, **{path: path for path in labels}}
    for item in args.port_fault:
        port, eq, spec = item.partition("=")
        if not eq or not spec:
            raise ValueError(f"--port-fault {item!r}: expected PORT=SPEC, e.g. 1-1.3=hang:cmd=write-memory")
        if port not in by_name:
            ports = ", ".join(f"{path} {label}" if label else path for path, label in labels.items())
            raise ValueError(f"--port-fault {item!r}: {port!r} is not a simulated port ({ports})")
        port_faults.setdefault(by_name[port], []).append(_fault("--port-fault", item, spec))
    return SimulationPlan(labels, layout, faults, shares, port_faults)


def board_faults(always: tuple[str, ...], shares: list[tuple[str, float]], seed: int):
    """Each simulated board's faults: every --fault, and each shared fault drawn for that board
    from a generator seeded by (seed, board number), so a run is repeatable."""
    import random

    def faults(n: int) -> tuple[str, ...]:
        rng = random.Random(seed * 7_919 + n)
        return always + tuple(spec for spec, fraction in shares if rng.random() < fraction)

    return faults if shares else always


def run_simulated(args: argparse.Namespace, config: Config | None, sock, plan: SimulationPlan) -> int:
    """The same station on the simulated hub. With --config, the recipe (and the port paths) come
    from the file: a line engineer's dry run of a new recipe before it meets hardware."""
    if config is not None:
        recipe = config.recipe
    else:
        flashloader, jump = build_flashloader_image()
        recipe = builtin_rt1020(os.urandom(45056), flashloader, jump)  # the user's image size
    if getattr(args, "trace", None) and recipe.trace is None:
        recipe = with_trace_dir(recipe, args.trace)
    trace = getattr(args, "replay_trace", None)
    if trace is not None and trace.meta.get("family") != recipe.family.name:
        print(
            f"gangd: --replay {trace.path}: a {trace.meta.get('family')} board, the recipe is for {recipe.family.name}",
            file=sys.stderr,
        )
        return 2
    if args.power_cycle:
        recipe = dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))
    labels = plan.labels
    store, outbox = open_records(args.state_dir, config)
    metrics = Metrics()
    notifier = Notifier()
    with SimHub(list(labels), seed=args.seed, port_faults=plan.port_faults) as hub:
        budget = config.flashloaders_per_root_port if config else DEFAULT_BUDGET
        station = Station(
            recipe.family,
            recipe,
            labels,
            records=store,
            power=SimPortPower(hub),
            metrics=metrics,
            bandwidth_budget=budget,
        )
        station.name = config.station_name if config else default_station_name()  # as on hardware
        server = http_server(station, store, metrics, sock, plan.layout, config.control_token if config else None)
        timing = TimingModel(time_scale=args.time_scale)
        faults = board_faults(plan.faults, plan.shares, args.seed)
        factory = BoardFactory(recipe.family, timing, seed=args.seed, faults=faults)
        operator = Operator(hub, factory, delay_s=args.replace_delay * max(args.time_scale, 0.0), limit=args.boards)
        station.listeners.append(lambda result: operator.finished(result.port))
        if trace is not None:  # a recorded board in the first port, counted as one of --boards
            from gangd.sim.replay import ReplayBoard

            operator.made += 1
            hub.plug(next(iter(labels)), ReplayBoard(trace, recipe.family, args.time_scale))
        operator.populate()
        reload = reloader(args.config, getattr(args, "trace", None)) if args.config else None
        try:
            trio.run(serve, station, SimHubSource(hub).run, args.stop_grace, server, reload, notifier, outbox)
        finally:
            operator.stop()
            notifier.close()
            close_records(store)
    print(f"gangd: {station.jobs_finished} boards, {station.counts['success']} programmed", file=sys.stderr)
    return 0
