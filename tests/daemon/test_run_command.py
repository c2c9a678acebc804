"""`gangd run --simulate N` as a process: boards are programmed, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

GANGD = str(Path(sys.executable).parent / "gangd")


def test_simulated_station_programs_boards_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [GANGD, "run", "--simulate", "3", "--time-scale", "0.2", "--replace-delay", "0.5", "--state-dir", str(tmp_path),
         "--http-address", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    finished = [line for line in lines if line["event"] == "job finished"]
    assert len([f for f in finished if f["result"] == "success"]) >= 3
    assert {f["port"] for f in finished} == {"1-1.1", "1-1.2", "1-1.3"}
    assert any(line["event"] == "stopping" and line["signal"] == "SIGTERM" for line in lines)
    assert "boards" in stderr and "programmed" in stderr


def test_bad_config_is_a_located_error_with_status_2(tmp_path):
    config = tmp_path / "line.toml"
    config.write_text('family = "mimxrt1020"\n[station.ports]\n"usb3" = "A1"\n')
    result = subprocess.run([GANGD, "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}:3: station.ports.\"usb3\": 'usb3' is not a USB port path" in result.stderr
    assert "Traceback" not in result.stderr
