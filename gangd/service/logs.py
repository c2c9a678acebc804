"""Logging: structlog for gangd, spsdk's standard-library logging routed through the same pipeline.

JSON lines on stdout when stdout is not a terminal (journald keeps them), a quiet console for the
operator on a terminal. Each job binds port, label, job id, serial and board identity as context
variables at the top of its task; spsdk runs in that task (a greenback portal) or in a worker
thread trio copies them into, so even spsdk's own log lines say which port they belong to.

Levels are enforced on gangd's one handler, per namespace, so no library can widen them: spsdk's
lines pass at `--spsdk-log-level` and above (its device-database cache chatter only at debug), and
spsdk's own console handler, which its database installs on first use with its logger set to
TRACE, is replaced by a mute one. On a terminal below `--log-level debug` the operator sees one
short coloured line per finished job, the station page's address and gangd's warnings; never
spsdk's lines, step timings or the job's full context.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import Any

import structlog

SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
# spsdk's device database: cache created / erased / reloaded, devices listed. Debug matter only.
SPSDK_CHATTY = ("spsdk.utils.database",)
# A job's inner lines: its summary ("job finished") says what the operator needs.
JOB_DETAIL = {"step failed", "flash diagnosed", "power-cycling the port", "malformed reply"}


class LevelFilter(logging.Filter):
    """Drops records below their namespace's level, whatever level a library set on its loggers."""

    def __init__(self, level: int, spsdk_level: int, console: bool) -> None:
        super().__init__()
        self.level = level
        self.spsdk_level = spsdk_level
        self.quiet = console and level > logging.DEBUG  # the operator's console

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == "spsdk" or name.startswith("spsdk."):
            if self.quiet:
                return False
            threshold = self.spsdk_level
            if name.startswith(SPSDK_CHATTY):
                threshold = max(threshold, logging.ERROR) if threshold > logging.DEBUG else threshold
            return record.levelno >= threshold
        if name == "gangd" or name.startswith("gangd."):
            if record.levelno < self.level:
                return False
            if self.quiet and isinstance(record.msg, dict) and record.msg.get("event") in JOB_DETAIL:
                return False
        return True


class OperatorConsole:
    """The console renderer for a person at the line: short lines, colour for results."""

    COLORS = {"success": "\x1b[1;32m", "failed": "\x1b[1;31m", "removed": "\x1b[33m", "stopped": "\x1b[33m"}
    MARKS = {"success": "✔", "failed": "✘", "removed": "⏏", "stopped": "■"}
    LEVELS = {"warning": "\x1b[33m", "error": "\x1b[1;31m", "critical": "\x1b[1;31m"}
    DIM, BOLD, RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
    HIDDEN = {"timestamp", "level", "logger", "event", "job", "serial", "board", "port"}

    def __init__(self, colors: bool = True) -> None:
        self.colors = colors

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{self.RESET}" if self.colors else text

    def __call__(self, logger, name: str, event: dict) -> str:
        when = self._c(self.DIM, time.strftime("%H:%M:%S"))
        if event.get("event") == "job finished":
            return f"{when}  {self.job(event, shutil.get_terminal_size((100, 24)).columns - 10)}"
        level = event.get("level", "info")
        text = str(event.get("event", ""))
        if event.get("event") == "station page" and event.get("url"):
            return f"{when}  {self._c(self.BOLD, 'station page: ' + event['url'])}  (open it in a browser)"
        label = event.get("label")
        extras = " ".join(
            f"{k}={v}" for k, v in event.items() if k not in self.HIDDEN and k != "label" and v is not None
        )
        line = f"{label}  {text}" if label else text
        if extras:
            line += f"  {self._c(self.DIM, extras)}"
        if level in self.LEVELS:
            line = self._c(self.LEVELS[level], line)
        return f"{when}  {line}"

    def job(self, event: dict, width: int = 90) -> str:
        """`A3    ✘ failed     2.1 s  write: <reason>`, the reason without its code's explanation
        (the page and the records have it) and cut to the terminal's width."""
        result = event.get("result", "?")
        label = str(event.get("label") or event.get("port") or "")
        duration = event.get("duration_s")
        head = self._c(self.COLORS.get(result, ""), f"{self.MARKS.get(result, '?')} {result:<8}")
        parts = [f"{self._c(self.BOLD, f'{label:<6}')}{head}", f"{duration:6.1f} s" if duration is not None else ""]
        if result == "success":
            notes = []
            if event.get("marginal"):
                notes.append(f"recovered: marginal flash, programmed at {event.get('flash_mhz')} MHz")
            elif event.get("attempts"):
                notes.append(f"recovered after {event['attempts']} failed step(s)")
            parts.append("  ".join(notes))
        else:
            step, reason = event.get("step"), event.get("reason") or ""
            text = f"{step}: {reason}" if step and reason else reason
            room = max(30, width - 25)
            parts.append(text if len(text) <= room else text[: room - 1] + "…")
        return "  ".join(part for part in parts if part)


def _mute_spsdk_console() -> None:
    """spsdk's database installs its own stderr handler (and sets its logger to TRACE) when first
    used. Put a mute handler of the class it looks for in its place, so that it reuses that one
    instead of printing past gangd's levels and format; and drop any it already installed."""
    try:
        from spsdk.apps.utils.spsdk_logger import _SPSDKConsoleHandler
    except ImportError:  # a future spsdk without it: nothing to mute
        return

    class Mute(_SPSDKConsoleHandler):
        def emit(self, record: logging.LogRecord) -> None:
            pass

        def setStream(self, stream):
            return None

    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (name == "spsdk" or name.startswith("spsdk.")):
            logger.handlers = [h for h in logger.handlers if not isinstance(h, _SPSDKConsoleHandler)]
    for name in SPSDK_CHATTY:
        logging.getLogger(name).addHandler(Mute())


def configure(level: str = "info", json: bool | None = None, spsdk_level: str = "warning", stream=None) -> None:
    logging.disable(logging.NOTSET)  # the command line keeps logging off until a command sets it up
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    numeric = logging.getLevelName(level.upper())
    spsdk_numeric = logging.getLevelName(spsdk_level.upper())
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
    elif numeric <= logging.DEBUG:
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = OperatorConsole()
    structlog.configure(
        # A line below its logger's level is dropped before anything is built for it (a job's
        # "step started" lines at info: py-spy put building and then dropping them at an eighth
        # of trio's thread at N=64). The loggers' levels are set below from the same settings.
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(LevelFilter(numeric, spsdk_numeric, console=not json))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # other libraries: warnings only
    logging.getLogger("gangd").setLevel(numeric)
    logging.getLogger("spsdk").setLevel(spsdk_numeric)
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("spsdk.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)  # spsdk sets levels on its children; let them inherit ours
    _mute_spsdk_console()
