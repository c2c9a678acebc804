"""`gangd sim`: simulated boards by hand (a pty board, a hub, emulated hidraw nodes).

Part of the simulation wiring, with `gangd/service/simulated.py`: the verb itself lives with the
simulator (`gangd/sim/cli.py`), imported only when this verb runs.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from gangd.sim import cli as sim_cli

    sim_cli.add_parser(subparsers)
