"""gangd: program many NXP MCU boards at once over USB."""

__version__ = "0.1.0"
