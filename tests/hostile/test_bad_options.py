"""Bad command-line values for `gangd run` and `gangd sim`: one line naming the option, exit 2, no
traceback, and nothing started (no state directory, no simulated hub)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gangd.sim.faults import KINDS
from gangd.sim.images import build_flashloader_image
from tests.support import GANGD

FAULT_KINDS = f"(one of {', '.join(sorted(KINDS))})"  # the simulator's own list: every kind it has

RUN = [
    # (what, arguments after `gangd run`, the one line, or its start when it ends with "...")
    ("unknown fault kind", ["--simulate", "1", "--fault", "bogus"], f"gangd: --fault 'bogus': unknown kind 'bogus' {FAULT_KINDS}..."),
    ("fault without its key", ["--simulate", "1", "--fault", "status:cmd=write-memory"], "gangd: --fault 'status:cmd=write-memory': status needs code=N"),
    ("fault with a bad number", ["--simulate", "1", "--fault", "slow-flash:factor=fast"], "gangd: --fault 'slow-flash:factor=fast': factor='fast' is not a number"),
    ("port fault without PORT=", ["--simulate", "2", "--port-fault", "hang"], "gangd: --port-fault 'hang': expected PORT=SPEC, e.g. 1-1.3=hang:cmd=write-memory"),
    ("port fault on no such port", ["--simulate", "2", "--port-fault", "1-1.9=hang"], "gangd: --port-fault '1-1.9=hang': '1-1.9' is not a simulated port (1-1.1, 1-1.2)"),
    ("port fault with a bad spec", ["--simulate", "2", "--port-fault", "1-1.2=no-response"], "gangd: --port-fault '1-1.2=no-response': no-response needs cmd=NAME"),
    ("fault share above 1", ["--simulate", "2", "--fault-share", "marginal-read:max-mhz=100=1.5"], "gangd: --fault-share 'marginal-read:max-mhz=100=1.5': expected SPEC=FRACTION with a fraction from 0 to 1"),
    ("fault share without a fraction", ["--simulate", "2", "--fault-share", "marginal-read:max-mhz=100"], "gangd: --fault-share 'marginal-read:max-mhz=100': expected SPEC=FRACTION with a fraction from 0 to 1"),
    ("fault share with a bad spec", ["--simulate", "2", "--fault-share", "marginal-read:max-mhz=-5=0.25"], "gangd: --fault-share 'marginal-read:max-mhz=-5=0.25': max-mhz must be positive"),
    ("layout naming too many ports", ["--simulate", "2", "--layout", "A1 A2 / B1"], "gangd: --layout names 3 ports, --simulate has 2"),
    ("layout with an empty row", ["--simulate", "2", "--layout", "A1 A2 /"], "gangd: --layout 'A1 A2 /': an empty row (rows are separated by '/', labels by spaces)"),
    ("layout placing a port twice", ["--simulate", "2", "--layout", "A1 A1"], "gangd: --layout: row 1: 'A1' is placed twice"),
    ("no ports", ["--simulate", "0"], "gangd run: argument --simulate: 0 is out of range: a whole number from 1 to 126 (see gangd run --help)"),
    ("ports not a number", ["--simulate", "four"], "gangd run: argument --simulate: 'four' is not a whole number from 1 to 126 (see gangd run --help)"),
    ("more boards than a bus addresses", ["--simulate", "126", "--root-ports", "2"], "gangd: --simulate 126 with --root-ports 2: 128 USB devices (boards and root-port hubs) on one bus, which addresses at most 127"),
    ("no root ports", ["--simulate", "2", "--root-ports", "0"], "gangd run: argument --root-ports: 0 is out of range: a whole number from 1 to 126 (see gangd run --help)"),
    ("more root ports than ports", ["--simulate", "2", "--root-ports", "3"], "gangd: --root-ports 3: more root ports than the 2 ports of --simulate (each needs one)"),
    ("more controllers than root ports", ["--simulate", "4", "--root-ports", "2", "--controllers", "3"], "gangd: --controllers 3: more host controllers than the 2 root ports (each needs one)"),
    ("no controllers", ["--simulate", "2", "--controllers", "0"], "gangd run: argument --controllers: 0 is out of range: a whole number from 1 to 126 (see gangd run --help)"),
    ("negative time scale", ["--simulate", "1", "--time-scale", "-1"], "gangd run: argument --time-scale: '-1': expected a finite number, 0 or more (see gangd run --help)"),
    ("time scale not a number", ["--simulate", "1", "--time-scale", "nan"], "gangd run: argument --time-scale: 'nan': expected a finite number, 0 or more (see gangd run --help)"),
    ("negative replace delay", ["--simulate", "1", "--replace-delay", "-0.5"], "gangd run: argument --replace-delay: '-0.5': expected a finite number, 0 or more (see gangd run --help)"),
    ("no boards", ["--simulate", "1", "--boards", "0"], "gangd run: argument --boards: 0 is out of range: a whole number from 1 up (see gangd run --help)"),
    ("negative stop grace", ["--simulate", "1", "--stop-grace", "-1"], "gangd run: argument --stop-grace: '-1': expected a finite number, 0 or more (see gangd run --help)"),
    ("unknown log level", ["--simulate", "1", "--log-level", "loud"], "gangd run: argument --log-level: 'loud' is not one of debug, info, warning, error, critical (see gangd run --help)"),
    ("unknown spsdk log level", ["--simulate", "1", "--spsdk-log-level", "loud"], "gangd run: argument --spsdk-log-level: 'loud' is not one of debug, info, warning, error, critical (see gangd run --help)"),
    ("simulated boards and a sim socket", ["--simulate", "1", "--sim-socket", "/tmp/hub.sock"], "gangd: --sim-socket: the boards come from --simulate; give one or the other"),
    ("unknown option", ["--simulate", "1", "--faults", "hang"], "gangd: unrecognized arguments: --faults hang (see gangd --help)"),
]  # fmt: skip

SIM = [
    ("unknown fault kind", ["--hub", "2", "--fault", "bogus"], f"gangd sim: argument --fault: fault 'bogus': unknown kind 'bogus' {FAULT_KINDS}..."),
    ("port fault on a port path that is not one", ["--hub", "2", "--port-fault", "A1=hang"], "gangd sim: argument --port-fault: 'A1=hang': expected PORT=SPEC with a port path, e.g. 1-1.3=hang (see gangd sim --help)"),
    ("port fault with a bad spec", ["--hub", "2", "--port-fault", "1-1.1=status:cmd=reset"], "gangd sim: argument --port-fault: fault 'status:cmd=reset': status needs code=N (see gangd sim --help)"),
    ("port fault on no such port", ["--hub", "2", "--port-fault", "1-1.3=hang"], "gangd sim: --port-fault names ports the hub does not have: 1-1.3"),
    ("no ports", ["--hub", "0"], "gangd sim: argument --hub: 0 is out of range: a whole number from 1 to 126 (see gangd sim --help)"),
    ("more root ports than ports", ["--hub", "2", "--root-ports", "4"], "gangd sim: --root-ports 4: more root ports than the 2 ports of --hub (each needs one)"),
    ("more boards than a bus addresses", ["--hub", "120", "--root-ports", "8"], "gangd sim: --hub 120 with --root-ports 8: 128 USB devices (boards and root-port hubs) on one bus, which addresses at most 127"),
    ("more controllers than root ports", ["--hub", "4", "--root-ports", "2", "--controllers", "3"], "gangd sim: --controllers 3: more host controllers than the 2 root ports (each needs one)"),
    ("no bandwidth", ["--hub", "2", "--bandwidth-budget", "0"], "gangd sim: argument --bandwidth-budget: 0 is out of range: a whole number from 1 up (see gangd sim --help)"),
    ("infinite time scale", ["--hub", "2", "--time-scale", "inf"], "gangd sim: argument --time-scale: 'inf': expected a finite number, 0 or more (see gangd sim --help)"),
    ("unknown stage", ["--hub", "2", "--stage", "app"], "gangd sim: argument --stage: invalid choice: 'app' (choose from 'rom', 'flashloader') (see gangd sim --help)"),
    ("unknown family", ["--hub", "2", "--family", "mimxrt9999"], "gangd sim: --family: unknown family 'mimxrt9999': not in spsdk's device database"),
    ("nowhere to put boards", ["--time-scale", "0"], "gangd sim: say where the boards go: --uart, --hub N or --hidraw [--hub N]"),
]  # fmt: skip


def one_line(args: list[str]) -> str:
    result = subprocess.run([GANGD, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def matches(line: str, expected: str) -> bool:
    return line.startswith(expected[:-3]) if expected.endswith("...") else line == expected


@pytest.mark.parametrize("what, args, expected", RUN, ids=[case[0] for case in RUN])
def test_gangd_run_refuses_a_bad_option_before_starting(tmp_path, what, args, expected):
    state = tmp_path / "state"
    line = one_line(["run", *args, "--state-dir", str(state), "--http-address", "127.0.0.1:0"])
    assert matches(line, expected), line
    assert not state.exists()  # refused before the state directory (or anything else) was touched


@pytest.mark.parametrize("what, args, expected", SIM, ids=[case[0] for case in SIM])
def test_gangd_sim_refuses_a_bad_option(what, args, expected):
    line = one_line(["sim", *args])
    assert matches(line, expected), line


@pytest.fixture
def config(tmp_path) -> Path:
    image, jump = build_flashloader_image()
    (tmp_path / "fl.bin").write_bytes(image)
    (tmp_path / "app.bin").write_bytes(bytes(4096))
    path = tmp_path / "line.toml"
    path.write_text(
        'family = "mimxrt1020"\n[station.ports]\n"1-1.1" = "A1"\n"1-1.2" = "A2"\n'
        f'[flashloader]\npath = "fl.bin"\nload_address = 0x20000000\njump_address = {jump:#x}\n'
        "[memory]\nid = 9\noption_address = 0x2000\noptions = [0xC0000007]\n"
        '[[image]]\npath = "app.bin"\naddress = 0x60000000\n'
    )
    return path


def test_simulation_options_on_real_boards_are_refused_not_ignored(tmp_path, config):
    state = tmp_path / "state"
    line = one_line(["run", "--config", str(config), "--fault", "hang", "--time-scale", "0", "--state-dir", str(state)])
    assert line == "gangd: --time-scale, --fault: for simulated boards only (add --simulate N)"
    assert not state.exists()


def test_the_simulated_ports_follow_the_configuration(tmp_path, config):
    state = tmp_path / "state"
    line = one_line(["run", "--config", str(config), "--simulate", "3", "--state-dir", str(state)])
    assert line == f"gangd: --simulate 3: {config} lists 2 ports in [station.ports]; say --simulate 2"
    line = one_line(["run", "--config", str(config), "--simulate", "2", "--root-ports", "2", "--state-dir", str(state)])
    assert line == f"gangd: --root-ports: the ports and their root ports come from [station.ports] in {config}"
    line = one_line(
        ["run", "--config", str(config), "--simulate", "2", "--controllers", "2", "--state-dir", str(state)]
    )
    assert line == (
        f"gangd: --controllers: the ports and their buses (one controller each) come from [station.ports] in {config}"
    )
    # A port fault may name the port by its label.
    line = one_line(
        ["run", "--config", str(config), "--simulate", "2", "--port-fault", "A3=hang", "--state-dir", str(state)]
    )
    assert line == "gangd: --port-fault 'A3=hang': 'A3' is not a simulated port (1-1.1 A1, 1-1.2 A2)"
    # ... and by a label --layout gives (the layout is read first).
    line = one_line(
        ["run", "--simulate", "2", "--layout", "B1 B2", "--port-fault", "B3=hang", "--state-dir", str(state)]
    )
    assert line == "gangd: --port-fault 'B3=hang': 'B3' is not a simulated port (1-1.1 B1, 1-1.2 B2)"
    assert not state.exists()


def test_gangd_run_checks_the_flashloader_as_check_config_does(tmp_path, config):
    (tmp_path / "fl.bin").write_bytes(bytes(0x8440))
    line = one_line(["run", "--config", str(config), "--simulate", "2", "--state-dir", str(tmp_path / "state")])
    assert line.startswith(f"gangd: {config}:6: flashloader.path: no image vector table at 0x20000400")
