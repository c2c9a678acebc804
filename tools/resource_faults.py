"""The soak's resource faults (`python -m tools.soak --resource-faults`): the state directory's
filesystem filled and freed, the journal locked past gangd's busy timeout by a "backup tool"
(another SQLite connection holding the write lock) and released, while gangd programs the line.

The state directory is a tmpfs the soak mounts (root only: mount(2) needs CAP_SYS_ADMIN). Not done
here (said in the closing note): the filesystem turning read-only mid-run (a tmpfs with files open
for writing refuses `remount,ro`: EBUSY) and wall-clock steps (they need libfaketime in gangd's
process).

Each cycle measures how long gangd took to take writes again once the resource returned (its
`gangd_journal_writable` back to 1), and whether it was still running.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TMPFS_SIZE = "64m"
HOLD_S = 3.0  # how long each fault lasts once it has bitten
LOCK_S = 7.0  # past gangd's busy timeout (records.BUSY_TIMEOUT_S = 5 s)
RESUME_LIMIT_S = 10.0  # "within seconds of the resource returning"


def mount_state(state: Path) -> None:
    if os.geteuid() != 0:
        raise SystemExit("--resource-faults mounts a tmpfs for the state directory: run it as root")
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(state)], check=True)


def unmount_state(state: Path) -> None:
    subprocess.run(["umount", "-l", str(state)], check=False)


@dataclass
class ResourceFaults:
    state: Path
    http_port: int
    cycles: list[dict] = field(default_factory=list)

    def writable(self) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None  # restarting after a kill
        line = next((x for x in text.splitlines() if x.startswith("gangd_journal_writable ")), None)
        return None if line is None else float(line.split()[1])

    def cycle(self, n: int, daemon: subprocess.Popen) -> None:
        kind = ("disk-full", "locked")[n % 2]
        with self._fault(kind) as bit:
            time.sleep(HOLD_S)
        returned = time.monotonic()
        deadline = returned + 60
        while self.writable() != 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.cycles.append(
            {
                "kind": kind,
                "bit": bit(),
                "resumed_s": time.monotonic() - returned,
                "gangd_alive": daemon.poll() is None,
            }
        )

    @contextlib.contextmanager
    def _fault(self, kind: str):
        seen: list[bool] = []
        if kind == "disk-full":
            filler = self.state / "filler"
            with open(filler, "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * (1 << 20))
                        handle.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                try:
                    yield lambda: bool(seen)
                    seen.append(self.writable() == 0.0)
                finally:
                    filler.unlink()
            return
        backup = sqlite3.connect(self.state / "records.sqlite", isolation_level=None, timeout=30)
        backup.execute("BEGIN IMMEDIATE")  # the backup tool's write lock
        try:
            time.sleep(LOCK_S - HOLD_S)
            yield lambda: bool(seen)
            seen.append(self.writable() == 0.0)
        finally:
            backup.execute("ROLLBACK")
            backup.close()

    def invariants(self) -> dict[str, int]:
        return {
            "gangd exited on its own": sum(not c["gangd_alive"] for c in self.cycles),
            f"resumed later than {RESUME_LIMIT_S:g} s after the resource": sum(
                c["resumed_s"] > RESUME_LIMIT_S for c in self.cycles
            ),
        }
