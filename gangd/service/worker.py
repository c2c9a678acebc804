"""`python -m gangd.service.worker`: one worker process of a station (gangd/station/workers.py).

Started by the station's supervisor, never by hand: `--fd` is its end of the link. It logs like
the supervisor (the same stream and format, its lines tagged `worker=N`), ignores SIGINT and
SIGTERM (a Ctrl-C reaches the whole process group; the supervisor decides how its jobs stop) and
dies with the supervisor (PR_SET_PDEATHSIG), as the jobs would if they ran in its process.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys

import structlog
import trio

from gangd.service import logs
from gangd.station.link import Link
from gangd.station.worker import WorkerJobs

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def command(log_level: str, spsdk_log_level: str, station: str | None) -> list[str]:
    """How the supervisor starts a worker (it adds --fd and --worker)."""
    argv = [sys.executable, "-m", "gangd.service.worker", "--log-level", log_level]
    argv += ["--spsdk-log-level", spsdk_log_level]
    return argv + (["--station", station] if station else [])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() == 1:  # the supervisor died before the line above: so do we
        os._exit(1)


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    link = Link(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
    try:
        await WorkerJobs(link).serve()
    finally:
        await link.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gangd.service.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, required=True, help="this worker's end of the link")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--spsdk-log-level", default="warning")
    parser.add_argument("--station")
    args = parser.parse_args(argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(args.log_level, spsdk_level=args.spsdk_log_level)
    structlog.contextvars.bind_contextvars(worker=args.worker)
    if args.station:
        structlog.contextvars.bind_contextvars(station=args.station)
    trio.run(_serve, args.fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
