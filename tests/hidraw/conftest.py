"""`gangd sim --hidraw` in its own process, and programs run against its boards under umockdev.

The simulator must run under umockdev's preload (it re-runs itself under `umockdev-wrapper`), so
the tests cannot hold its boards: they see them as any host program does, through libudev and
/dev/hidrawN, and follow them through the simulator's hotplug events (JSON lines on its stderr).
Every process started here keeps spsdk's cache and logs under the session's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import Process

BIN = Path(sys.executable).parent
GANGD = str(BIN / "gangd")
ROM_IDS, FLASHLOADER_IDS = (0x1FC9, 0x0130), (0x15A2, 0x0073)  # mimxrt1020 in spsdk's database


class HidrawSim(Process):
    """One `gangd sim --hidraw` process: its UMOCKDEV_DIR, its events, and wrapped commands."""

    def __init__(self, args: list[str], env: dict[str, str], timeout: float = 30) -> None:
        super().__init__([GANGD, "sim", "--hidraw", "--time-scale", "0", *args], env=env)
        line = self.wait_until(
            lambda p: next((x for x in p.stdout_lines if x.startswith("UMOCKDEV_DIR=")), None),
            timeout,
            "gangd sim --hidraw to print its UMOCKDEV_DIR",
        )
        self.umockdev_dir = line.strip().partition("=")[2]
        self.env = {**env, "UMOCKDEV_DIR": self.umockdev_dir}

    @property
    def events(self) -> list[dict]:
        """The simulator's hotplug events: the JSON lines on its stderr."""
        return [json.loads(line) for line in list(self.stderr_lines) if line.startswith("{")]

    @property
    def log(self) -> str:
        return self.stderr

    def wait_events(self, predicate, timeout: float = 20) -> None:
        """Until `predicate(events)` holds, woken by each new hotplug event."""
        self.wait_until(lambda p: predicate(self.events), timeout, "hotplug events")

    def wait_event(
        self, action: str, port: str, ids: tuple[int, int] | None = None, after: int = 0, timeout: float = 20
    ) -> tuple[int, dict]:
        """The first matching hotplug event at index `after` or later: (its index, the event)."""

        def find(p: Process):
            events = self.events
            for index in range(after, len(events)):
                event = events[index]
                if event["action"] == action and event["port"] == port and ids in (None, (event["vid"], event["pid"])):
                    return index, event
            return None

        return self.wait_until(find, timeout, f"{action} on {port} {ids}")

    def run(self, *command: str, check: bool = True, timeout: float = 60, cwd: Path | None = None):
        """`command` under umockdev-wrapper, seeing this simulator's boards."""
        result = subprocess.run(
            ["umockdev-wrapper", *command], capture_output=True, text=True, timeout=timeout, env=self.env, cwd=cwd
        )
        if check:
            assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def tool(self, name: str, *args: str, **kwargs):
        return self.run(str(BIN / name), *args, **kwargs)

    def scan(self) -> dict[str, list[str]]:
        """`gangd scan`: port -> [ids, stage, families, devnode, serial]."""
        out = self.run(GANGD, "scan", "--family", "mimxrt1020").stdout
        return {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("1-")}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        returncode = super().stop(sig, timeout)
        assert returncode == 0, f"gangd sim --hidraw exited {returncode}:\n{self.log}"
        assert "Traceback" not in self.log and "crashed" not in self.log, self.log
        assert not os.path.exists(self.umockdev_dir), "the testbed outlived the simulator"
        return returncode


@pytest.fixture(scope="session")
def tool_env(tmp_path_factory) -> dict[str, str]:
    """The environment for every process here: spsdk's cache and logs in a temporary directory."""
    assert shutil.which("umockdev-wrapper"), "umockdev is installed by scripts/setup"
    home = tmp_path_factory.mktemp("spsdk-home")
    return {
        **os.environ,
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        "SPSDK_DEBUG_LOGGING_DISABLED": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture
def hidraw_sim(tool_env):
    """start(*sim_args) -> a running HidrawSim; all are stopped (and checked) at the end."""
    sims: list[HidrawSim] = []

    def start(*args: str) -> HidrawSim:
        sim = HidrawSim(list(args), tool_env)
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()
