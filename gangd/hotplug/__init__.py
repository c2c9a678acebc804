"""Finding boards: USB hotplug events from udev or from the simulated hub."""

from .events import PortEvent

__all__ = ["PortEvent"]
