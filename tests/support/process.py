"""A child process (gangd, the simulator) whose stdout and stderr are both drained as they come.

Both pipes are read by threads into lines, so a chatty child never blocks on a full pipe and a
test waits for a line instead of blocking on readline(); every wait has a deadline, and a failure
shows the tail of both streams. The child is stopped with SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from .wait import wait_for

GANGD = str(Path(sys.executable).parent / "gangd")
T = TypeVar("T")


class Process:
    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.command = list(command)
        self.log_path = log  # both streams, as they come, for a human reading a failure
        self._log_file: IO[str] | None = log.open("w") if log is not None else None
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._changed = threading.Condition()
        self._open_streams = 2
        self.process = subprocess.Popen(
            self.command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.process.pid
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self.stderr_lines), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                if self._log_file is not None:
                    self._log_file.write(line)
                    self._log_file.flush()
                self._changed.notify_all()
        with self._changed:
            self._open_streams -= 1
            self._changed.notify_all()  # end of stream: waiters see the child has gone

    # --- what it said ---------------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        with self._changed:
            return "".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.stderr_lines)

    def json_lines(self) -> list[dict[str, Any]]:
        """gangd's JSON log entries (stdout), in order."""
        with self._changed:
            return [json.loads(line) for line in self.stdout_lines if line.startswith("{")]

    def tail(self, characters: int = 3000) -> str:
        return (
            f"command: {self.command}\nstdout: ...{self.stdout[-characters:]}\nstderr: ...{self.stderr[-characters:]}"
        )

    # --- waiting --------------------------------------------------------------------------------

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_until(self, predicate: Callable[[Process], T], timeout: float, what: str) -> T:
        """`predicate(self)`'s first true value, re-read whenever the child writes a line; an
        AssertionError naming `what`, with the tail of both streams, after `timeout` s or when
        the child has exited without it."""

        def ready() -> T | bool:
            value = predicate(self)
            return value or self._open_streams == 0

        with self._changed:
            self._changed.wait_for(ready, timeout)
            value = predicate(self)
        if not value:
            if self._open_streams == 0:  # both pipes closed: the child has gone (or is going)
                try:
                    code = self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
                raise AssertionError(f"no {what}: the child closed its output (exit status {code})\n{self.tail()}")
            raise AssertionError(f"waited {timeout:g} s for {what}\n{self.tail()}")
        return value

    def wait_entry(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first JSON log entry that `match`es."""
        return self.wait_until(lambda p: next((e for e in p.json_lines() if match(e)), None), timeout, what)

    def wait(self, timeout: float = 30) -> int:
        """Its exit status, once both streams are drained; killed and failed after `timeout` s."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._join()
            raise AssertionError(f"{self.command[0]} did not exit within {timeout:g} s\n{self.tail()}") from None
        self._join()
        return self.process.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Sends `sig` (if it still runs) and waits; SIGKILL after `timeout` s. The exit status."""
        if self.running():
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._join()
        return self.process.returncode

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(5)
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()


class Gangd(Process):
    """`gangd run` with its HTTP server on `address`."""

    def __init__(self, args: Sequence[str], address: str, log: Path | None = None, env: dict | None = None) -> None:
        super().__init__([GANGD, "run", *args], env=env, log=log)
        self.address = address

    def wait_ready(self, timeout: float = 30) -> None:
        """Until /healthz answers; fails at once, with its output, if gangd exited."""

        def up() -> bool:
            if not self.running():
                raise AssertionError(f"gangd exited with {self.process.returncode}\n{self.tail()}")
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"http://{self.address}/healthz", timeout=1) as response:
                    return response.read() == b"ok\n"
            except OSError:
                return False

        wait_for(up, timeout, f"gangd's /healthz at {self.address}")
