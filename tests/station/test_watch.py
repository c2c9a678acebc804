"""`gangd watch` in a real terminal: tmux runs it at 80x24 against a running gangd; capture-pane
reads the screen. A row per port with a progress bar; q quits with status 0 and gives the
terminal back (the alternate screen is gone)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

from .conftest import GANGD, wait_for

PORTS = ("1-1.1", "1-1.2", "1-1.3")
BAR = re.compile(r"[█░]{8}\s+\d+%")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=True).stdout


def test_watch_in_tmux(tmp_path, gangd):
    assert shutil.which("tmux"), "scripts/setup installs tmux"
    daemon = gangd(
        [
            "--simulate",
            "3",
            "--time-scale",
            "1",
            "--replace-delay",
            "0.5",
            "--state-dir",
            str(tmp_path / "state"),
            "--fault-share",
            "marginal-read:max-mhz=100=0.5",
        ]
    )
    session = f"gangd-watch-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit"
    command = f"{GANGD} watch --address {daemon.address}; echo $? > {exit_file}; sleep 30"
    # Its own tmux server (-L): the test neither sees nor touches anyone else's sessions.
    socket = ["-L", session]
    tmux(*socket, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-e", "TERM=xterm-256color", command)
    try:

        def screen() -> str:
            return tmux(*socket, "capture-pane", "-p", "-t", session)

        def rows_with_bars():
            text = screen()
            rows = [line for line in text.splitlines() if line.split()[:1] and line.split()[0] in PORTS]
            return text if len(rows) == len(PORTS) and all(BAR.search(row) for row in rows) else None

        text = wait_for(rows_with_bars, 20, "a row per port with a progress bar")
        assert "PORT" in text and "STATE" in text and "q quits" in text
        assert all(len(line) <= 80 for line in text.splitlines())

        def something_running():
            return any(
                re.search(r"(programming|recovering|reconnecting)\s+[█░]{8}\s+\d+%", line)
                for line in screen().splitlines()
            )

        wait_for(something_running, 20, "a running job on the screen", interval=0.05)

        tmux(*socket, "send-keys", "-t", session, "q")
        wait_for(exit_file.exists, 10, "gangd watch to exit")
        assert exit_file.read_text().strip() == "0"
        after = screen()
        assert "PORT" not in after and "q quits" not in after  # the alternate screen is gone
    finally:
        subprocess.run(["tmux", *socket, "kill-server"], capture_output=True, timeout=10)
