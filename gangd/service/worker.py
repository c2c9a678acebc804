"""`python -m gangd.service.worker`: one worker process of a station (gangd/station/workers.py).

Started by the station's supervisor, never by hand: `--fd` is its end of the link. It logs like
the supervisor (the same stream and format, its lines tagged `worker=N`), ignores SIGINT and
SIGTERM (a Ctrl-C reaches the whole process group; the supervisor decides how its jobs stop) and
ends its jobs when the supervisor is gone: the link's other end is held by the supervisor alone, so
its death (SIGKILL included) is the link's end, at once.

Not PR_SET_PDEATHSIG: Linux sends it when the *thread* that forked the child exits, and trio starts
processes from its worker threads, which end after some idle seconds (a soak caught every worker
killed that way).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import structlog
import trio

from gangd.service import collector, logs
from gangd.station.link import Link
from gangd.station.worker import WorkerJobs


def command(log_level: str, spsdk_log_level: str, station: str | None) -> list[str]:
    """How the supervisor starts a worker (it adds --fd and --worker)."""
    argv = [sys.executable, "-m", "gangd.service.worker", "--log-level", log_level]
    argv += ["--spsdk-log-level", spsdk_log_level]
    return argv + (["--station", station] if station else [])


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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(args.log_level, spsdk_level=args.spsdk_log_level)
    structlog.contextvars.bind_contextvars(worker=args.worker)
    if args.station:
        structlog.contextvars.bind_contextvars(station=args.station)
    collector.settle()
    trio.run(_serve, args.fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
