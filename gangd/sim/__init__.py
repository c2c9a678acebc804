"""A faithful simulated NXP board, hub and line operator (see ARCHITECTURE.md, "The simulator")."""

from gangd.sim.board import FLASHLOADER, ROM, BoardSpec, SimBoard
from gangd.sim.faults import FaultPlan, FaultSpecError, parse_fault
from gangd.sim.hub import BoardFactory, Operator, SimHub
from gangd.sim.timing import TimingModel

__all__ = [
    "FLASHLOADER",
    "ROM",
    "BoardFactory",
    "BoardSpec",
    "FaultPlan",
    "FaultSpecError",
    "Operator",
    "SimBoard",
    "SimHub",
    "TimingModel",
    "parse_fault",
]
