"""What an unexpected exception leaves behind: one log line naming it, and a crash report.

No traceback reaches an operator's console. The report (the traceback, gangd's version, the
configuration's SHA-256) goes to the state directory, where whoever fixes the bug finds it; the
process exits non-zero so that systemd restarts it (a start-up failure that a restart cannot mend
exits 2 instead, before this is reached: RestartPreventExitStatus=2 in the unit).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from pathlib import Path

import structlog

from gangd import __version__

log = structlog.get_logger("gangd")

CRASH_EXIT = 1  # systemd's Restart=on-failure restarts it (2 is kept for what a restart cannot mend)


def config_hash(config_path: str | None) -> str:
    if not config_path:
        return "none (--simulate)"
    try:
        return hashlib.sha256(Path(config_path).read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def report(exc: BaseException, state_dir: str, config_path: str | None) -> int:
    """Write the crash report, log the one line, return the exit status."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())  # wall time: when it happened, for people
    path = Path(state_dir) / f"crash-{stamp}-{os.getpid()}.txt"
    text = (
        f"gangd {__version__} crashed at {stamp}\n"
        f"python {sys.version.split()[0]}\n"
        f"argv {sys.argv}\n"
        f"configuration {config_path or '-'} sha256 {config_hash(config_path)}\n\n"
        + "".join(traceback.format_exception(exc))
    )
    try:
        path.write_text(text)
        where = str(path)
    except OSError as error:  # the disk that is full may be why: the line still names the error
        where = f"not written ({path}: {error.strerror})"
    log.critical("gangd crashed: a bug, please report it with the crash report", error=_name(exc), report=where)
    return CRASH_EXIT


def _name(exc: BaseException) -> str:
    """The innermost exception of a group (trio's nurseries wrap them), as `Type: message`."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
