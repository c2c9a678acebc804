"""The garbage collector of a long-running gangd process: its youngest generation collected every
`GEN0_THRESHOLD` net container allocations instead of CPython's 700.

Measured at N=64 (45 KB image, 8 root ports, time scale 1, in the benchmark's station): with
CPython's defaults the collector took 5.7-7.6 ms of gangd's CPU per batch of 64 boards (8-16
collections of the youngest generation, and one or two of the middle one, which walks every object
that survived a young collection since), about 4 % of the batch's CPU (docs/PERFORMANCE.md). A
board's job allocates and frees thousands of objects (frames, reports, spsdk's command and response
objects), nearly all freed by their reference counts the moment they are done with: the young
collections ran about once a board and found next to nothing. Cyclic garbage (a handled
exception's traceback, say) now waits for up to 10,000 allocations: well under a megabyte.

Not `gc.freeze()` as well: tried, and the suite crashed inside the collector after a
`gc.unfreeze()` beside the simulator's greenlets (docs/PERFORMANCE.md, "Tried and not kept").
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


def settle() -> None:
    """Collect the youngest generation less often (module doc). Called once start-up is done: by
    the daemon before its station starts, by a worker process before it serves, by the
    benchmark's stand-in for the daemon."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, middle, oldest)
