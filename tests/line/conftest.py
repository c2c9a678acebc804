"""A real PostgreSQL server for the line tests: Debian's `postgresql` binaries, an unprivileged
cluster made with initdb in a temporary directory, listening on loopback only, password auth."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ..support import free_port

PASSWORD = "line-secret-7f3a9c"


class Postgres:
    def __init__(self, root: Path, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        # A missing server is a missing install step, not a reason to pass: scripts/setup installs it.
        assert found, "PostgreSQL is not installed: scripts/setup installs Debian's postgresql"
        self.bin = Path(found[-1]).parent
        self.root, self.port = root, port
        self.data = root / "data"
        self.url = f"postgresql://gangd@127.0.0.1:{port}/postgres"
        self.password_file = root / "password"
        self.password_file.write_text(PASSWORD + "\n")
        # initdb refuses to run as root: as root, the cluster belongs to Debian's postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(root, "postgres")
            shutil.chown(self.password_file, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "gangd",
            "--auth=scram-sha-256",
            f"--pwfile={self.password_file}",
            "-N",
        )

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, password=PASSWORD, autocommit=True)


@pytest.fixture
def postgres():
    root = Path(tempfile.mkdtemp(prefix="gangd-pg-"))
    os.chmod(root, 0o755)
    server = Postgres(root, free_port())
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(root, ignore_errors=True)
