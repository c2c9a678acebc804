"""Reading a file the configuration names, and saying plainly when it is not one.

A configuration, an image, a flashloader or a list of per-board values must be a regular file. A
path naming a directory, a device (`/dev/zero` would be read for ever), a FIFO (the read would
block for ever) or a socket is refused before it is opened, with `FILE: reason`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The file types of stat(2) (inode(7)), in the operator's words.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


class NotAFile(ValueError):
    """The path is missing, unreadable or not a regular file; the message is `FILE: reason`."""


def problem(path: Path) -> str | None:
    """Why `path` cannot be read as a file's contents, or None if it can be tried."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    for test, kind in _KINDS:
        if test(mode):
            return f"is {kind}, not a file"
    return None


def read_bytes(path: Path) -> bytes:
    """The file's bytes; NotAFile naming it when it is not a regular, readable file."""
    reason = problem(path)
    if reason is not None:
        raise NotAFile(f"{path}: {reason}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotAFile(f"{path}: cannot read: {exc.strerror}") from None


def read_text(path: Path) -> str:
    """The file as UTF-8 text (TOML is UTF-8: toml.io, "Spec"); NotAFile naming the first bad byte."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise NotAFile(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
