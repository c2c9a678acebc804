"""What the operator sees is true: a board that took 0.7 s does not read "0 s", and a simulated
station has a name (the host's, as on hardware without [station] name)."""

from __future__ import annotations

import json
import re
import socket
import subprocess

from gangd.cli.watch import duration

from .conftest import GANGD, get, status, wait_for


def test_port_times_are_to_a_tenth_of_a_second_and_the_uptime_whole():
    assert duration(0.74, tenths=True) == "0.7 s"
    assert duration(0.04, tenths=True) == "0.0 s"
    assert duration(12.34, tenths=True) == "12.3 s"
    assert duration(75, tenths=True) == "1:15"  # past a minute, whole seconds
    assert duration(0.74) == "0 s"  # the uptime stays in whole units


def test_simulated_station_shows_its_name_and_each_board_time_to_a_tenth(tmp_path, gangd):
    daemon = gangd(["--simulate", "2", "--time-scale", "1", "--boards", "2", "--state-dir", str(tmp_path / "state")])
    assert status(daemon.address)["station"] == socket.gethostname()

    def finished():
        view = json.loads(get(f"http://{daemon.address}/api/view"))
        ports = [p for p in view["ports"] if p["state"] == "success" and p["elapsed_s"] is not None]
        return ports if len(ports) == 2 else None

    ports = wait_for(finished, 60, "both simulated boards programmed")
    # The simulated RT1020 flow at time scale 1 takes under a few seconds: a whole-second display
    # would show most boards as "0 s" or "1 s".
    frame = subprocess.run(
        [GANGD, "watch", "--once", "--address", daemon.address], capture_output=True, text=True, timeout=30
    ).stdout
    for port in ports:
        row = next(line for line in frame.splitlines() if line.split()[:1] == [port["label"]])
        assert f" {port['elapsed_s']:.1f} s " in f" {row} ", (port, row)
        assert re.search(r"\b\d+\.\d s\b", row)
