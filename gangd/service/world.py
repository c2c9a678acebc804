"""What a station runs on, and the typed options that choose it.

A world is the part of gangd's surroundings that differs between a line and a test bench: where
boards come from (udev, the simulated hub, a simulator in another process), who can switch a
port's power, which ports there are and the recipe. `hardware.py` makes one from udev and sysfs,
`simulated.py` from the simulator; `daemon.run_world` runs any of them the same way: records,
metrics, the station page, sd_notify and the serve loop. The command line (`gangd/cli/run.py`)
turns its arguments into the options below; nothing under it sees argparse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gangd.config.loader import Config, Layout
from gangd.config.recipe import Recipe
from gangd.core.bus import HostControllers
from gangd.core.results import JobResult
from gangd.core.types import BoardSource, PortPower


@dataclass(frozen=True)
class DaemonOptions:
    """`gangd run`'s options for any world."""

    state_dir: str
    stop_grace_s: float
    config_path: str | None = None  # re-read on SIGHUP
    trace_dir: str | None = None  # `--trace DIR`: outlives a reload
    workers: int | None = None  # `--workers N`; None: [station] workers (0: the jobs in gangd's process)
    log_level: str = "info"  # the worker processes log as gangd does
    spsdk_log_level: str = "warning"


@dataclass(frozen=True)
class SimulationOptions:
    """`gangd run --simulate N`'s options, as given (checked against each other and the
    configuration by `simulated.plan_simulation`)."""

    ports: int
    root_ports: int | None = None
    controllers: int | None = None
    time_scale: float = 1.0
    replace_delay_s: float = 2.0
    seed: int = 0
    boards: int | None = None  # how many boards the operator brings; None: without end
    faults: tuple[str, ...] = ()
    fault_shares: tuple[str, ...] = ()  # SPEC=FRACTION
    port_faults: tuple[str, ...] = ()  # PORT=SPEC
    layout: str | None = None
    power_cycle: bool = False
    replay: str | None = None  # a trace file: the first port holds the board it recorded


@dataclass
class World:
    """A station's surroundings. `listeners` hear each job's result (the operator, a remote hub);
    `close` releases what the world holds, once the station has stopped."""

    recipe: Recipe
    ports: dict[str, str | None]  # port path -> label; empty: every port
    source: BoardSource
    power: PortPower | None
    config: Config | None = None
    layout: Layout | None = None
    listeners: list[Callable[[JobResult], None]] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    # Which host controller each bus belongs to (sysfs on hardware; one per bus when simulated)
    controllers: HostControllers = field(default_factory=HostControllers)
