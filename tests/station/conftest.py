"""gangd as a process on simulated boards, for the station page, gangd watch and the console."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gangd.sim.images import build_flashloader_image

GANGD = str(Path(sys.executable).parent / "gangd")
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> bytes:
    # No proxies: only loopback is ever asked.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


def status(address: str) -> dict:
    return json.loads(get(f"http://{address}/status"))


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Polls `condition` until it returns something true, or fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def write_config(
    directory: Path, labels: list[str], address: str, layout: str | None = None, token: str | None = TOKEN
) -> Path:
    """A line's configuration with its own flashloader and image files, simulated ports 1-1.N."""
    image, jump = build_flashloader_image(load_address=0x2000_0000)
    (directory / "fl.bin").write_bytes(image)
    (directory / "app.bin").write_bytes(os.urandom(45056))
    lines = ['family = "mimxrt1020"', "[station]"]
    if layout:
        lines.append(f"layout = {json.dumps(layout.split(' / '))}")
    lines.append("[station.ports]")
    lines += [f'"1-1.{n}" = "{label}"' for n, label in enumerate(labels, start=1)]
    lines += [
        "[flashloader]",
        'path = "fl.bin"',
        "load_address = 0x20000000",
        f"jump_address = {jump:#x}",
        "[memory]",
        "id = 9",
        "option_address = 0x2000",
        "options = [0xC0000007]",
        "[[image]]",
        'path = "app.bin"',
        "address = 0x60000000",
        "[recovery]",
        "backoff_s = 0.05",
        "[http]",
        f'address = "{address}"',
    ]
    if token:
        lines.append(f'control_token = "{token}"')
    path = directory / "line.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Gangd:
    """A `gangd run` process; stopped with SIGTERM (then SIGKILL) when the test ends."""

    def __init__(self, args: list[str], address: str, log: Path, env: dict | None = None) -> None:
        self.address = address
        self.log = log
        self.process = subprocess.Popen(
            [GANGD, "run", *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def wait_ready(self, timeout: float = 30) -> None:
        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"gangd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                return get(f"http://{self.address}/healthz", timeout=1) == b"ok\n"
            except OSError:
                return False

        wait_for(up, timeout, f"gangd's /healthz at {self.address}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


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
