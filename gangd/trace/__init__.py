"""Field traces: each job's USB conversation in a pcapng file (record, show, replay).

A replayed board (gangd/sim/replay.py) that is asked something its trace does not hold answers
with status `REPLAY_DIVERGED | N` (N: the trace's report it expected). The code is gangd's own
choice, outside spsdk's status codes (mboot/error_codes.py uses 0..~0x10000 and a few 0x5A5A
words), so that the job records the divergence as its reason instead of a generic failure.
"""

REPLAY_DIVERGED = 0x7EB0_0000
REPLAY_REPORT_MASK = 0x000F_FFFF


def diverged_status(report: int) -> int:
    return REPLAY_DIVERGED | min(report, REPLAY_REPORT_MASK)


def diverged_at(status: int | None) -> int | None:
    """The report number a replay-divergence status names, else None."""
    if status is None or status & ~REPLAY_REPORT_MASK != REPLAY_DIVERGED:
        return None
    return status & REPLAY_REPORT_MASK


def divergence_reason(report: int) -> str:
    return f"replay diverged at report {report}: the trace holds no answer to what gangd asked"
