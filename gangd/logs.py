"""Logging: structlog for gangd, spsdk's standard-library logging routed through the same pipeline.

JSON lines on stdout when stdout is not a terminal (journald keeps them), a readable console
renderer on a terminal. Each job binds port, label, job id, serial and board identity as context
variables at the top of its task; trio copies them into the worker threads that run spsdk, so even
spsdk's own log lines say which port they belong to.
"""

from __future__ import annotations

import logging
import sys

import structlog

SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "info", json: bool | None = None, spsdk_level: str = "warning", stream=None) -> None:
    logging.disable(logging.NOTSET)  # the command line keeps logging off until a command sets it up
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # other libraries: warnings only
    logging.getLogger("gangd").setLevel(level.upper())
    logging.getLogger("spsdk").setLevel(spsdk_level.upper())
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("spsdk.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)  # spsdk sets levels on its children; let them inherit ours
