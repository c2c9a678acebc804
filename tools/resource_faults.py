"""The soak's resource faults (`python -m tools.soak --resource-faults`): the state directory's
filesystem filled and freed, the journal locked past gangd's busy timeout by a "backup tool"
(another SQLite connection holding the write lock) and released, and gangd's wall clock stepped
two days back and forward again (NTP correcting a host clock), while gangd programs the line.

The state directory is a tmpfs the soak mounts (root only: mount(2) needs CAP_SYS_ADMIN). The
clock is Debian's libfaketime preloaded into gangd (and its workers), reading its offset from a
file the soak rewrites (FAKETIME_TIMESTAMP_FILE, re-read every second); the monotonic
clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC), as NTP leaves CLOCK_MONOTONIC. Not done here: the
filesystem turning read-only mid-run. A tmpfs (or ext4) with files open for writing refuses
`remount,ro` (EBUSY); a real disk error (ext4 errors=remount-ro) does not come back writable
without an unmount and fsck, that is without a gangd restart: tests/faults/test_read_only.py.

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
KINDS = ("disk-full", "locked", "clock-step")
CLOCK_STEP_S = -2 * 86400  # a host that booted two days ahead, corrected by NTP (and back again)
FLAP_S = 1.1  # past FAKETIME_CACHE_DURATION: each position is seen
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")  # Debian's faketime


def mount_state(state: Path) -> None:
    if os.geteuid() != 0:
        raise SystemExit("--resource-faults mounts a tmpfs for the state directory: run it as root")
    if not LIBFAKETIME.exists():
        raise SystemExit(f"--resource-faults steps gangd's clock with {LIBFAKETIME}: apt-get install faketime")
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(state)], check=True)


def unmount_state(state: Path) -> None:
    subprocess.run(["umount", "-l", str(state)], check=False)


@dataclass
class ResourceFaults:
    state: Path
    http_port: int
    clock: Path  # libfaketime's offset for gangd's wall clock, rewritten by the clock-step cycles
    cycles: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock.write_text("+0\n")

    def daemon_env(self) -> dict[str, str]:
        """What gangd runs with: its wall clock follows `clock`, its monotonic clock is the host's."""
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.clock),
            # Re-read once a second: libfaketime reads it in every call it wraps (time, poll,
            # epoll_wait ...): with FAKETIME_NO_CACHE the seed-1 soak took 241 s, not 123 s.
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def writable(self) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None  # restarting after a kill
        line = next((x for x in text.splitlines() if x.startswith("gangd_journal_writable ")), None)
        return None if line is None else float(line.split()[1])

    def cycle(self, n: int, daemon: subprocess.Popen) -> None:
        kind = KINDS[n % len(KINDS)]
        with self._fault(kind) as bit:
            if kind == "clock-step":
                self._flap()
            else:
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

    def _flap(self) -> None:
        """The clock stepped back and forward every FLAP_S while the fault lasts (a time source
        that flaps): each step lands inside the steps and deadlines of the jobs running then."""
        deadline = time.monotonic() + HOLD_S
        back = False
        while time.monotonic() < deadline:
            time.sleep(FLAP_S)
            self.clock.write_text("+0\n" if back else f"{CLOCK_STEP_S:+d}s\n")
            back = not back
        self.clock.write_text(f"{CLOCK_STEP_S:+d}s\n")

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
        if kind == "clock-step":
            journal = sqlite3.connect(self.state / "records.sqlite", isolation_level=None, timeout=30)
            last = journal.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()[0]
            self.clock.write_text(f"{CLOCK_STEP_S:+d}s\n")
            stepped = time.time()
            try:
                yield lambda: bool(seen)
                # Bitten: jobs started under the stepped clock, their records in its wall time.
                old = journal.execute(
                    "SELECT COUNT(*) FROM jobs WHERE id > ? AND started < ?", (last, stepped + CLOCK_STEP_S / 2)
                ).fetchone()[0]
                seen.append(old > 0)
            finally:
                self.clock.write_text("+0\n")  # forward again, seen within FAKETIME_CACHE_DURATION
                journal.close()
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
