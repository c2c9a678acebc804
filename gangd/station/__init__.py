"""The station floor: one task per USB port, events routed to their port, admission, one job per
board. Above the engine (it starts jobs), below the service (which composes and serves it)."""

from gangd.station.port import Port
from gangd.station.station import Changes, Station, UnknownPort

__all__ = ["Changes", "Port", "Station", "UnknownPort"]
