"""The operator's console and a bad environment, as a person meets them.

`gangd run` on a terminal (a pseudo-terminal here) prints the station page's address and one short
line per finished job: no spsdk line and no Python dict, even while spsdk builds its device
database cache from nothing. A taken address, a port out of range, a state directory that cannot
be used and a second gangd on the same state directory each end in one line naming the problem
and the setting to change, with exit status 2 and no traceback."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

from .conftest import GANGD, free_port, wait_for

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_lines(fd: int, count: int, timeout: float) -> list[str]:
    """The first `count` lines written to the terminal (or as many as came within `timeout`)."""
    data, deadline = b"", time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            data += chunk
    return [ANSI.sub("", line) for line in data.decode(errors="replace").splitlines()[:count]]


def test_run_on_a_terminal_is_quiet(tmp_path):
    master, slave = os.openpty()
    env = {**os.environ, "SPSDK_CACHE_FOLDER": str(tmp_path / "spsdk-cache"), "COLUMNS": "120"}
    process = subprocess.Popen(
        [
            GANGD,
            "run",
            "--simulate",
            "4",
            "--time-scale",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--http-address",
            "127.0.0.1:0",
            "--fault-share",
            "marginal-read:max-mhz=100=0.5",
            "--fault-share",
            "write-protect:persist=always=0.1",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        lines = read_lines(master, 30, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        os.close(master)
    assert len(lines) == 30, lines
    text = "\n".join(lines)
    assert "spsdk" not in text.lower(), text
    assert not re.search(r"\{['\"]|': |\": ", text), text  # no dict, JSON or repr
    assert re.search(r"station page: http://127\.0\.0\.1:\d+/", lines[0]), text
    finished = [line for line in lines if re.search(r"[✔✘] (success|failed)\s+\d+\.\d s", line)]
    assert len(finished) >= 20
    assert any("recovered: marginal flash, programmed at 100 MHz" in line for line in finished), text
    assert all(len(line) < 200 for line in lines)
    assert process.returncode == 0


def run_fails(args: list[str], timeout: float = 60) -> str:
    result = subprocess.run([GANGD, "run", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_environment_is_one_line_and_status_2(tmp_path, gangd):
    state = tmp_path / "state"
    first = gangd(["--simulate", "1", "--time-scale", "0", "--state-dir", str(state)])

    # The same address: named, with the setting to change.
    line = run_fails(["--simulate", "1", "--state-dir", str(tmp_path / "other"), "--http-address", first.address])
    assert line == (
        f"gangd: {first.address} is already in use (another gangd, or another program): "
        "stop it or change --http-address"
    )

    # The same state directory: the other gangd is named by its pid.
    line = run_fails(["--simulate", "1", "--state-dir", str(state), "--http-address", f"127.0.0.1:{free_port()}"])
    assert f"state directory {state} is in use by another gangd (pid {first.process.pid}: " in line
    assert line.endswith("stop it or change --state-dir")

    # A port out of range, a state directory that is a file, one that cannot be written.
    line = run_fails(["--simulate", "1", "--state-dir", str(tmp_path / "x"), "--http-address", "127.0.0.1:70000"])
    assert (
        line
        == "gangd: '127.0.0.1:70000': port 70000 is out of range (1-65535, or 0 for any free port): change --http-address"
    )
    (tmp_path / "file").write_text("")
    line = run_fails(["--simulate", "1", "--state-dir", str(tmp_path / "file" / "state")])
    assert line == f"gangd: state directory {tmp_path / 'file' / 'state'} is not a directory: change --state-dir"
    line = run_fails(["--simulate", "1", "--state-dir", "/sys/gangd-state"])  # not writable even by root
    assert line.startswith("gangd: state directory /sys/gangd-state cannot be created or written (")

    # The first gangd never noticed.
    wait_for(lambda: first.process.poll() is None, 1, "the first gangd still running")
    assert first.stop() == 0


def test_config_http_address_errors_name_the_file(tmp_path):
    from .conftest import write_config

    config = write_config(tmp_path, ["A1"], "127.0.0.1:99999")
    line = run_fails(["--config", str(config), "--simulate", "1", "--state-dir", str(tmp_path / "s")])
    assert re.fullmatch(
        rf"gangd: {re.escape(str(config))}:\d+: http\.address: '127\.0\.0\.1:99999': port 99999 "
        r"is out of range \(1-65535, or 0 for any free port\)",
        line,
    )
    with socket_taken() as address:
        config = write_config(tmp_path, ["A1"], address)
        line = run_fails(["--config", str(config), "--simulate", "1", "--state-dir", str(tmp_path / "s")])
        assert line.endswith(
            f"is already in use (another gangd, or another program): stop it or change [http] address in {config}"
        )


class socket_taken:
    """A loopback address something else listens on."""

    def __enter__(self) -> str:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self.sock.close()
