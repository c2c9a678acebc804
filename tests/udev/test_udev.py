"""gangd's udev source against a real libudev: umockdev builds the sysfs tree and sends uevents.

The scenario runs in a child process under `umockdev-wrapper` (its preload library must be there
from the start); it prints the PortEvents gangd produced, which are asserted here. What is left
untested: a real kernel's event ordering and timing, and hidraw ioctls on a real node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

SCENARIO = Path(__file__).with_name("scenario.py")


def run_scenario(*ports: str) -> tuple[list[dict], str]:
    assert shutil.which("umockdev-wrapper"), "umockdev is installed by scripts/setup"
    result = subprocess.run(
        ["umockdev-wrapper", sys.executable, str(SCENARIO), *ports],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return events, result.stdout + result.stderr


def test_hidraw_nodes_map_to_port_paths_and_stages():
    events, output = run_scenario()
    rom, flashloader = (0x1FC9, 0x0130), (0x15A2, 0x0073)

    def key(e):
        return (e["action"], e["port"], (e["vid"], e["pid"]), e["serial"])

    assert [key(e) for e in events] == [
        # coldplug: a ROM board on port 1 and a flashloader on port 2
        ("add", "1-1.1", rom, "A"),
        ("add", "1-1.2", flashloader, "B"),
        # board A re-enumerates as the flashloader: same port, new node
        ("remove", "1-1.1", rom, "A"),
        ("add", "1-1.1", flashloader, "A"),
        # a new board on port 3, then board B is pulled
        ("add", "1-1.3", rom, "C"),
        ("remove", "1-1.2", flashloader, "B"),
    ]
    nodes_of_a = [e["devnode"] for e in events if e["port"] == "1-1.1"]
    assert nodes_of_a[0] == nodes_of_a[1] and nodes_of_a[2] != nodes_of_a[0]
    assert all(e["devnode"].startswith("/dev/hidraw") for e in events)
    # The keyboard is ignored; the board on an unconfigured port is logged with its port.
    assert "046d:c31c" not in json.dumps(events)
    assert "outside the configuration" in output and "1-1.7" in output


def test_all_ports_are_taken_when_none_are_configured():
    events, _ = run_scenario("--all")
    assert {e["port"] for e in events if e["action"] == "add"} == {"1-1.1", "1-1.2", "1-1.3", "1-1.7"}


def test_scan_lists_boards_by_port_with_ids_and_stage():
    _, output = run_scenario("--scan")
    lines = {line.split()[0]: line.split() for line in output.splitlines() if line.startswith("1-")}
    assert lines["1-1.1"][1:3] == ["1fc9:0130", "rom"]
    assert lines["1-1.2"][1:3] == ["15a2:0073", "flashloader"]
    assert "mimxrt1020" in lines["1-1.1"][3] and lines["1-1.1"][-1] == "A"
    assert "1-1.4" not in lines  # the keyboard
    assert "1-1.7" in lines  # scan is not limited to configured ports
    domains = [line for line in output.splitlines() if line.startswith("root port ")]
    assert domains == [f"root port 1-1: {len(lines)} boards, 1 of about 8 flashloader-stage slots in use"]
    # the testbed's root hub hangs under no controller device: its bus is a controller of its own
    assert "1 USB host controller, 1 root port\ncontroller usb1: 1-1 (3 ports)\n" in output
    assert "enumeration allows at most 9,125 boards/h here" in output
