"""The HTTP address gangd serves on (station page, API, /metrics): `HOST:PORT` as the config and the
command line spell it. A value of the configuration, so it lives with it; the server binds it."""

from __future__ import annotations

DEFAULT_ADDRESS = "127.0.0.1:9740"


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not 0 <= int(port) < 65536:  # 0: any free port
        raise ValueError(f"{text!r}: port {int(port)} is out of range (1-65535, or 0 for any free port)")
    return host.strip("[]") or "127.0.0.1", int(port)
