"""cProfile in every thread of a process, for `tools.bench.cost --profile`.

cProfile's profiler covers only the thread that enables it; gangd's board calls run in trio's
worker threads and the simulator's boards in threads of their own. `start()` enables a profiler in
the calling thread and, through `threading.setprofile`, in every thread started afterwards; `dump()`
merges them into one pstats file. Each profiler counts its own thread's CPU time
(`_own_cpu_clock`), so a thread blocked in poll() or on a lock counts nothing.
"""

from __future__ import annotations

import cProfile
import pstats
import threading
import time

_profiles: list[cProfile.Profile] = []


def _own_cpu_clock():
    """This thread's CPU clock, read from whichever thread asks: the merge at the end closes every
    profiler's open frames from the main thread, and `time.thread_time` would read the main
    thread's clock there."""
    clock = time.pthread_getcpuclockid(threading.get_ident())
    last = [0.0]

    def timer() -> float:
        try:
            last[0] = time.clock_gettime(clock)
        except OSError:  # the thread has ended: its clock with it
            pass
        return last[0]

    return timer


def _in_new_thread(frame, event, arg) -> None:
    profile = cProfile.Profile(_own_cpu_clock())
    _profiles.append(profile)
    profile.enable()  # replaces this hook for the rest of the thread


def start() -> None:
    threading.setprofile(_in_new_thread)
    profile = cProfile.Profile(_own_cpu_clock())
    _profiles.append(profile)
    profile.enable()


def dump(path: str) -> None:
    threading.setprofile(None)
    stats = None
    for profile in list(_profiles):
        try:
            profile.create_stats()
        except Exception:  # a thread's profiler that never saw a call
            continue
        if not getattr(profile, "stats", None):
            continue
        stats = pstats.Stats(profile) if stats is None else stats.add(profile)
    if stats is not None:
        stats.dump_stats(path)
