"""The benchmark runs end to end and writes its figures. Targets are not asserted here: speed
figures live in the benchmark's output, not in timed tests."""

from __future__ import annotations

import json
import subprocess
import sys


def test_quick_benchmark_writes_its_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "floor ratio, 45,056-byte image" in result.stdout and "vs CLI flow" in result.stdout
    figures = json.loads(out.read_text())
    for size in ("45056", "1048576"):
        floor = figures["floor"][size]
        assert floor["ok"] and floor["ratio"] >= 1.0  # nothing beats the model's floor
    assert figures["gangd"]["batches"]["2"]["ok"] == 2 == figures["gangd"]["batches"]["2"]["flash_ok"]
    assert figures["peers"]["cli_per_board_s"] > figures["floor"]["45056"]["floor_s"]
    # CPU per MiB of image, gangd's and the simulator's, measured on boards that were programmed
    assert "gangd CPU per MiB, 1 MiB image" in result.stdout and "simulator CPU per MiB" in result.stdout
    cost = figures["cost_per_mib"]["1048576"]
    assert cost["flash_ok"] == cost["boards"] == 2
    assert cost["gangd_ms_per_mib"] > 0 and cost["sim_ms_per_mib"] > 0
    # Tracing every board: each traced batch's boards programmed and one trace per board written.
    assert "gangd CPU per board, trace keep=all" in result.stdout
    assert figures["tracing"]["ok"] == 2 == figures["tracing"]["files"]
    assert "N=2 batch time, trace keep=all" in result.stdout and "trace writer CPU per trace" in result.stdout
    # The bus rows: the batches against the floor with enumeration serialised per controller
    assert "calibration: fixed pure-Python loop" in result.stdout
    bus = figures["bus"]["N=4 on 2 controllers, 2 root ports"]
    assert bus["ok"] == 4 and bus["floor"]["total"] > bus["floor"]["parallel"]
    assert bus["wall_s"] >= bus["floor"]["total"]  # nothing beats the floor
