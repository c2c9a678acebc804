"""A faithful simulated NXP board, hub and line operator (see DESIGN.md, "The board simulator")."""

from .board import FLASHLOADER, ROM, BoardSpec, SimBoard
from .faults import FaultPlan, FaultSpecError, parse_fault
from .hub import BoardFactory, Operator, SimHub
from .timing import TimingModel

__all__ = [
    "FLASHLOADER", "ROM", "BoardFactory", "BoardSpec", "FaultPlan", "FaultSpecError", "Operator",
    "SimBoard", "SimHub", "TimingModel", "parse_fault",
]  # fmt: skip
