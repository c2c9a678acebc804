"""gangd as a process on simulated boards, for the station page, gangd watch and the console."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from ..support import GANGD, Gangd, free_port, wait_for, write_line_config

__all__ = ["GANGD", "Gangd", "free_port", "wait_for"]  # the station tests import them from here
TOKEN = "test-token-0123456789abcdef"


def get(url: str, timeout: float = 5) -> bytes:
    # No proxies: only loopback is ever asked.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


def status(address: str) -> dict:
    return json.loads(get(f"http://{address}/status"))


def write_config(
    directory: Path, labels: list[str], address: str, layout: str | None = None, token: str | None = TOKEN
) -> Path:
    """A line's configuration with its own flashloader and image files, simulated ports 1-1.N."""
    return write_line_config(
        directory,
        {f"1-1.{n}": label for n, label in enumerate(labels, start=1)},
        os.urandom(45056),
        http_address=address,
        control_token=token,
        layout=layout.split(" / ") if layout else None,
        recovery={"backoff_s": 0.05},
    )


@pytest.fixture
def gangd(tmp_path):
    """start(args, address=..., env=...) -> a running Gangd whose /healthz answers."""
    started: list[Gangd] = []

    def start(args: list[str], address: str | None = None, env: dict | None = None, ready: bool = True) -> Gangd:
        address = address or f"127.0.0.1:{free_port()}"
        daemon = Gangd([*args, "--http-address", address], address, tmp_path / f"gangd-{len(started)}.log", env)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
