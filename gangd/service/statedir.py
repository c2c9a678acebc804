"""The state directory: created if missing, checked writable, and held by one gangd at a time.

Two daemons on one records database would each mark the other's running jobs `interrupted` at
start and fight over the same boards. gangd holds an exclusive `flock` on `<state-dir>/gangd.lock`
for its whole life (the kernel drops it when the process dies, SIGKILL included, so a crashed
gangd never leaves a stale lock) and writes its pid there so the next one can name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "gangd.lock"


class StateDirError(Exception):
    """The state directory cannot be used; the message says why and which setting to change."""


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {command}" if command else f"pid {pid}"


def hold(state_dir: str | Path, setting: str = "--state-dir") -> int:
    """Create and lock the state directory; returns the lock's file descriptor (keep it open)."""
    path = Path(state_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except (FileExistsError, NotADirectoryError):
        raise StateDirError(f"state directory {path} is not a directory: change {setting}") from None
    except OSError as exc:
        raise StateDirError(
            f"state directory {path} cannot be created or written ({exc.strerror}): change {setting}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        who = _describe(int(holder)) if holder.isdigit() else "another process"
        raise StateDirError(
            f"state directory {path} is in use by another gangd ({who}): stop it or change {setting}"
        ) from None
    if not os.access(path, os.W_OK):  # the lock file may exist in a directory we cannot write
        os.close(fd)
        raise StateDirError(f"state directory {path} is not writable: change {setting}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
