"""The file-descriptor limit, checked against the station's size before anything starts.

Each port holds a few descriptors while its board is programmed (the hidraw node, or the
simulator's socket; the trace file; a board's worker-thread wakeup), each worker process its
link and pipes, and the daemon a fixed set (the journal and its WAL and shm, the HTTP server
and its connections, udev's netlink socket, sd_notify, trio's wakeup pipe). The figures are our
estimate, rounded well up: `gangd run --simulate 64 --root-ports 8 --workers 4 --time-scale 0.05`
held 91 descriptors in the daemon (the simulator's boards included) and 9-10 in each worker
(`ls /proc/PID/fd | wc -l`, mid-run). Below the need, the soft limit is raised up to the hard one
(as systemd's own services may); a hard limit below it is a one-line refusal naming the setting.
"""

from __future__ import annotations

import resource

from gangd.core.bus import USB_ADDRESSES

BASE_FDS = 128  # the daemon's own, HTTP clients included
FDS_PER_PORT = 6
FDS_PER_WORKER = 16


class LimitError(Exception):
    """The limit cannot fit the station: the message names the setting to raise."""


def needed_fds(ports: int, workers: int) -> int:
    return BASE_FDS + FDS_PER_PORT * ports + FDS_PER_WORKER * workers


def check_fd_limit(ports: int | None, workers: int) -> int:
    """Raise the soft RLIMIT_NOFILE to what `ports` (None: every port of a bus) and `workers`
    need; LimitError if the hard limit is below it. Returns the limit in force."""
    need = needed_fds(ports or USB_ADDRESSES - 1, workers)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise LimitError(
            f"file-descriptor limit {hard} is below the {need} that {ports or 'all'} ports and {workers} "
            "workers need: raise LimitNOFILE= in the unit (or ulimit -n), or run fewer ports"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need
