"""The worlds of a simulated line: the station on the simulated hub with an operator
(`simulated_world`), or on a hub served by another process (`socket_world`, the soak).

The only product module (with `gangd/cli/sim.py`) that imports `gangd.sim`: everything above the
board source is the same code as on hardware (`daemon.run_world`); it imports nothing of the
hardware world (`hardware.py`).
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

from gangd.config.loader import GAP, Config, Layout, parse_layout_text, resolve_layout
from gangd.config.recipe import builtin_rt1020, with_trace_dir
from gangd.core.bus import topology_problem
from gangd.core.results import JobResult
from gangd.service.world import SimulationOptions, World
from gangd.sim import BoardFactory, Operator, SimHub, TimingModel
from gangd.sim.faults import FaultSpecError, parse_fault
from gangd.sim.hub import default_port_paths
from gangd.sim.images import build_flashloader_image
from gangd.sim.nor_flash import part_for
from gangd.sim.socket_source import SimSocketPower, SimSocketSource
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.trace.file import Trace
from gangd.trace.file import read as read_trace


def done_boards(operator: Callable[[JobResult], None]) -> Callable[[JobResult], None]:
    """The simulated operator hears of the boards that are done: one left waiting on its port for
    another job (result.board_waits) is not one to take out."""

    def listener(result: JobResult) -> None:
        if not result.board_waits:
            operator(result)

    return listener


def socket_world(config: Config, path: str) -> World:
    """Boards from a simulated hub served by another process (the soak), on the configured ports."""
    remote = SimSocketSource(path)
    return World(
        recipe=config.recipe,
        ports=dict(config.ports),
        source=remote.run,
        power=SimSocketPower(remote) if config.recipe.recovery.power_cycle else None,
        config=config,
        layout=config.layout,
        listeners=[done_boards(lambda result: remote.finished(result.port, result.result))],
    )


def _fault(option: str, item: str, spec: str) -> str:
    """A fault spec checked now, so a typo is one line before anything starts."""
    try:
        parse_fault(spec)
    except FaultSpecError as exc:
        reason = str(exc).removeprefix(f"fault {spec.strip()!r}: ")
        raise ValueError(f"{option} {item!r}: {reason}") from None
    return spec


def fault_shares(items: tuple[str, ...] | list[str]) -> list[tuple[str, float]]:
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
    replay: Trace | None = None  # the recorded board the first port holds


def plan_simulation(options: SimulationOptions, config: Config | None) -> SimulationPlan:
    """Every simulation option checked against the others and the configuration; a ValueError
    is one line naming the option and what to change."""
    if config is not None and config.ports:
        if options.ports != len(config.ports):
            raise ValueError(
                f"--simulate {options.ports}: {config.path} lists {len(config.ports)} ports in [station.ports]; "
                f"say --simulate {len(config.ports)}"
            )
        if options.root_ports is not None:
            raise ValueError(f"--root-ports: the ports and their root ports come from [station.ports] in {config.path}")
        if options.controllers is not None:
            raise ValueError(
                f"--controllers: the ports and their buses (one controller each) come from [station.ports] in {config.path}"
            )
        labels: dict[str, str | None] = dict(config.ports)
    else:
        root_ports, controllers = options.root_ports or 1, options.controllers or 1
        problem = topology_problem(options.ports, root_ports, "--simulate", controllers)
        if problem:
            raise ValueError(problem)
        labels = dict.fromkeys(default_port_paths(options.ports, root_ports, controllers))
    faults = tuple(_fault("--fault", spec, spec) for spec in options.faults)
    shares = fault_shares(options.fault_shares)
    layout = config.layout if config else None
    if options.layout is not None:
        rows = parse_layout_text(options.layout)
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
    for item in options.port_faults:
        port, eq, spec = item.partition("=")
        if not eq or not spec:
            raise ValueError(f"--port-fault {item!r}: expected PORT=SPEC, e.g. 1-1.3=hang:cmd=write-memory")
        if port not in by_name:
            ports = ", ".join(f"{path} {label}" if label else path for path, label in labels.items())
            raise ValueError(f"--port-fault {item!r}: {port!r} is not a simulated port ({ports})")
        port_faults.setdefault(by_name[port], []).append(_fault("--port-fault", item, spec))
    replay = read_trace(options.replay) if options.replay else None  # TraceError: one line naming the file
    family = config.recipe.family.name if config else "mimxrt1020"
    if replay is not None and replay.meta.get("family") != family:
        raise ValueError(f"--replay {replay.path}: a {replay.meta.get('family')} board, the recipe is for {family}")
    return SimulationPlan(labels, layout, faults, shares, port_faults, replay)


def board_faults(always: tuple[str, ...], shares: list[tuple[str, float]], seed: int):
    """Each simulated board's faults: every --fault, and each shared fault drawn for that board
    from a generator seeded by (seed, board number), so a run is repeatable."""

    def faults(n: int) -> tuple[str, ...]:
        rng = random.Random(seed * 7_919 + n)
        return always + tuple(spec for spec, fraction in shares if rng.random() < fraction)

    return faults if shares else always


def simulated_world(
    config: Config | None, options: SimulationOptions, plan: SimulationPlan, trace_dir: str | None = None
) -> World:
    """The simulated hub, a board in each port and an operator replacing each finished board. With
    a configuration, its recipe (and port paths): a line engineer's dry run of a new recipe before
    it meets hardware; without, the user's RT1020 flow with a random 45,056-byte image."""
    if config is not None:
        recipe = config.recipe
    else:
        flashloader, jump = build_flashloader_image()
        recipe = builtin_rt1020(os.urandom(45056), flashloader, jump)  # the user's image size
    if trace_dir and recipe.trace is None:
        recipe = with_trace_dir(recipe, trace_dir)
    if options.power_cycle:
        recipe = dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))
    hub = SimHub(list(plan.labels), seed=options.seed, port_faults=plan.port_faults)
    timing = TimingModel(time_scale=options.time_scale)
    factory = BoardFactory(
        recipe.family,
        timing,
        seed=options.seed,
        faults=board_faults(plan.faults, plan.shares, options.seed),
        flash_part=part_for(recipe.option_words),
    )
    delay_s = options.replace_delay_s * max(options.time_scale, 0.0)
    operator = Operator(hub, factory, delay_s=delay_s, limit=options.boards)
    if plan.replay is not None:  # a recorded board in the first port, counted as one of --boards
        from gangd.sim.replay import ReplayBoard

        operator.made += 1
        hub.plug(next(iter(plan.labels)), ReplayBoard(plan.replay, recipe.family, options.time_scale))
    operator.populate()

    def close() -> None:
        operator.stop()
        hub.close()

    return World(
        recipe=recipe,
        ports=plan.labels,
        source=SimHubSource(hub).run,
        power=SimPortPower(hub),
        config=config,
        layout=plan.layout,
        listeners=[done_boards(lambda result: operator.finished(result.port))],
        close=close,
    )
