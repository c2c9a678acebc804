"""`gangd run --simulate N` as a process: boards are programmed, SIGTERM stops it cleanly."""

from __future__ import annotations

import subprocess

from ..support import GANGD, Process, simulated_run


def test_simulated_station_programs_boards_and_stops_on_sigterm(processes, tmp_path):
    process = processes(simulated_run(3, tmp_path))

    # Read its log as it comes: SIGTERM once each port has programmed a board.
    def each_port_programmed(p: Process) -> bool:
        ports = {e["port"] for e in p.json_lines() if e["event"] == "job finished" and e["result"] == "success"}
        return len(ports) == 3

    process.wait_until(each_port_programmed, 60, "a programmed board on each of the three ports")
    assert process.stop() == 0, process.stderr
    lines = process.json_lines()
    finished = [line for line in lines if line["event"] == "job finished"]
    assert len([f for f in finished if f["result"] == "success"]) >= 3
    assert {f["port"] for f in finished} == {"1-1.1", "1-1.2", "1-1.3"}
    assert any(line["event"] == "stopping" and line["signal"] == "SIGTERM" for line in lines)
    assert "boards" in process.stderr and "programmed" in process.stderr


def test_bad_config_is_a_located_error_with_status_2(tmp_path):
    config = tmp_path / "line.toml"
    config.write_text('family = "mimxrt1020"\n[station.ports]\n"usb3" = "A1"\n')
    result = subprocess.run([GANGD, "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}:3: station.ports.\"usb3\": 'usb3' is not a USB port path" in result.stderr
    assert "Traceback" not in result.stderr
