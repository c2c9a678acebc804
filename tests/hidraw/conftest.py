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
import threading
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
GANGD = str(BIN / "gangd")
ROM_IDS, FLASHLOADER_IDS = (0x1FC9, 0x0130), (0x15A2, 0x0073)  # mimxrt1020 in spsdk's database


class HidrawSim:
    """One `gangd sim --hidraw` process: its UMOCKDEV_DIR, its events, and wrapped commands."""

    def __init__(self, args: list[str], env: dict[str, str], timeout: float = 30) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [GANGD, "sim", "--hidraw", "--time-scale", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._cond = threading.Condition()
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self.umockdev_dir: str | None = None
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        with self._cond:
            ready = self._cond.wait_for(lambda: self.umockdev_dir or self.process.poll() is not None, timeout)
        if not self.umockdev_dir:
            self.process.kill()
            raise AssertionError(f"gangd sim --hidraw did not start (ready={ready}):\n{self.log}")
        self.env = {**env, "UMOCKDEV_DIR": self.umockdev_dir}

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            if line.startswith("UMOCKDEV_DIR="):
                with self._cond:
                    self.umockdev_dir = line.strip().partition("=")[2]
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            with self._cond:
                self.stderr.append(line)
                if line.startswith("{"):
                    self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self.stderr)

    def wait_until(self, predicate, timeout: float = 20) -> None:
        """Until `predicate(events)` holds, woken by each new hotplug event."""
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.events), timeout), f"events: {self.events}\n{self.log}"

    def wait_event(
        self, action: str, port: str, ids: tuple[int, int] | None = None, after: int = 0, timeout: float = 20
    ) -> tuple[int, dict]:
        """The first matching hotplug event at index `after` or later: (its index, the event)."""

        def find():
            for index in range(after, len(self.events)):
                event = self.events[index]
                if event["action"] == action and event["port"] == port and ids in (None, (event["vid"], event["pid"])):
                    return index, event
            return None

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        assert found, f"no {action} on {port} {ids} within {timeout} s; events: {self.events}\n{self.log}"
        return found

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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            for reader in self._readers:
                reader.join(timeout=5)
        assert self.process.returncode == 0, f"gangd sim --hidraw exited {self.process.returncode}:\n{self.log}"
        assert "Traceback" not in self.log and "crashed" not in self.log, self.log
        assert not os.path.exists(self.umockdev_dir), "the testbed outlived the simulator"


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
