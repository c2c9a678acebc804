"""The wall clock stepped two days back under a running station (NTP correcting a host that booted
with a wrong clock), with Debian's libfaketime in gangd's process, not the host's clock touched.

Durations, deadlines and the boards-per-hour rate are on the monotonic clock (libfaketime leaves it
alone with DONT_FAKE_MONOTONIC=1): no job fails on a deadline, no duration goes negative or grows
by days, the rate stays what the line does. The records keep wall time, as the clock says it."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from gangd.service.records import RecordStore

from ..support import GANGD, Process, free_port, wait_for

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
STEP_S = -2 * 86400


def api_view(address: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}/api/view", timeout=5) as response:
        return json.load(response)


def test_a_wall_clock_step_changes_no_duration_deadline_or_rate(processes, tmp_path):
    # A missing library is a missing install step, not a reason to pass: scripts/setup installs it.
    assert LIBFAKETIME.exists(), "libfaketime is not installed: scripts/setup installs Debian's faketime"
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        **os.environ,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",  # the file is read at every call: the step happens mid-run
        "DONT_FAKE_MONOTONIC": "1",
    }
    address = f"127.0.0.1:{free_port()}"
    argv = ["run", "--simulate", "2", "--time-scale", "0.05", "--replace-delay", "0.2"]
    daemon: Process = processes(
        [GANGD, *argv, "--state-dir", str(tmp_path / "state"), "--http-address", address], env=env
    )

    def finished() -> list[dict]:
        return [e for e in daemon.json_lines() if e["event"] == "job finished"]

    wait_for(lambda: len(finished()) >= 4, 60, "four boards before the step")
    offset.write_text(f"{STEP_S:+d}s\n")
    stepped_at = time.time()
    # Counted from after the step: of the jobs that finish from here on, at most one per port (two)
    # started before it; the rest started on the stepped clock.
    before = len(finished())
    wait_for(lambda: len(finished()) >= before + 6, 60, "six boards after the step")
    view = api_view(address)
    header = next(v for v in view.values() if isinstance(v, dict) and "boards_per_hour" in v)
    rate, uptime = header["boards_per_hour"], header["uptime_s"]
    after = finished()[before:]  # before the stop, whose cut-short jobs end `stopped`
    assert daemon.stop() == 0

    assert all(e["result"] == "success" for e in after), [(e["result"], e["step"]) for e in after]
    assert all(0 < e["duration_s"] < 30 for e in after), [e["duration_s"] for e in after]
    assert 0 < rate < 10 * 3600  # boards an hour over the last hour: a few per second at most
    assert 0 < uptime < 120
    store = RecordStore(tmp_path / "state" / "records.sqlite")
    rows = store.jobs()
    store.close()
    stepped = [r for r in rows if r["started"] < stepped_at + STEP_S / 2]
    assert len(stepped) >= 6 - 2, "the records keep the wall time the host's clock says, stepped or not"
    assert all(0 <= r["finished"] - r["started"] < 30 for r in stepped)
