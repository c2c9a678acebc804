"""One SIGTERM stops `gangd sim --hidraw`, however busy the machine.

With a Python signal handler, the kernel could hand the signal to any of the simulator's threads
(umockdev's GLib loop, the boards); CPython then only flags it for the main thread, which slept in
an untimed wait and never ran the handler: the simulator outlived its test (seen in 3 of 4 tries
under load). The simulator blocks the stop signals in every thread and takes them with sigwait().
"""

from __future__ import annotations

import re
import signal
from pathlib import Path


def blocked_signals(task: Path) -> int:
    return int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", (task / "status").read_text(), re.M).group(1), 16)


def test_no_thread_but_the_waiting_one_can_take_the_stop_signal(hidraw_sim):
    sim = hidraw_sim("--hub", "2")
    sim.wait_event("add", "1-1.2")
    pid = sim.process.pid  # the simulator itself: umockdev-wrapper execs it
    # The main thread waits in sigwait(), which unblocks the signals it waits for while it waits.
    others = [task for task in Path(f"/proc/{pid}/task").iterdir() if task.name != str(pid)]
    assert len(others) > 2  # the boards' and umockdev's threads are there
    for task in others:
        mask = blocked_signals(task)
        for stop in (signal.SIGINT, signal.SIGTERM):
            assert mask >> (stop - 1) & 1, (
                f"thread {task.name} ({(task / 'comm').read_text().strip()}) can take {stop.name}"
            )
    # The fixture's stop() sends one SIGTERM and wants a clean exit (status 0, testbed removed).
