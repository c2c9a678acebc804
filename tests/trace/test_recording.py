"""Recording a job's trace: what the board's hot path does per report (nothing but keep it),
when the file is encoded (once, when the job has ended, and only if it is kept), and the
in-memory cap (a job past it keeps its start and its end, and says what it let go)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from gangd.cli import main
from gangd.config.recipe import TraceSettings
from gangd.trace import file as tf
from gangd.trace.conversation import REPORT_OVERHEAD, Conversation
from gangd.trace.recorder import placed
from tools.make_traces import board_spec, run_one, trace_recipe

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces"


def test_the_tap_keeps_each_report_and_does_nothing_else():
    """Every function the tap calls, Python's and C's, as the interpreter's profiler hook sees
    them: a per-report encoding (struct, hashlib, json, an Entry, a copy) would be in the list."""
    conversation = Conversation(2**20)
    calls: list[str] = []

    def hook(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_qualname)
        elif event == "c_call":
            calls.append(arg.__qualname__)

    sent, received = b"\x01\x00\x0c\x00" + bytes(12), bytearray(b"\x03\x00\x0c\x00".ljust(1016, b"\0"))
    sys.setprofile(hook)
    try:
        conversation.sent(sent)
        conversation.received(received)
    finally:
        sys.setprofile(None)
    assert calls[:-1] == ["Conversation.sent", "len", "monotonic_ns", "Conversation.received", "len", "monotonic_ns"]
    (segment,) = conversation.close().segments
    assert segment[1] is sent and segment[3] is received  # kept as handed over, not copied again
    assert segment[0] > 0 and segment[2] < 0  # a report in is stamped ~ns


async def test_a_job_is_encoded_once_when_it_ends_and_never_when_its_trace_is_not_kept(tmp_path, monkeypatch):
    encoded: list[int] = []
    encode = tf.encode

    def counting(*args, **kwargs):
        encoded.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(tf, "encode", counting)
    result = await run_one(trace_recipe(TraceSettings(str(tmp_path / "failed"), keep="failed")), board_spec(()))
    assert result.result == "success" and encoded == []
    result = await run_one(trace_recipe(TraceSettings(str(tmp_path / "all"), keep="all")), board_spec(()))
    assert result.result == "success" and encoded == [1]


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.pcapng")), ids=lambda p: p.stem)
def test_a_trace_read_and_written_again_is_the_same_file(tmp_path, path):
    """The recorder's encoder and the one for entries read back are one: byte for byte."""
    trace = tf.read(str(path))
    size = tf.write(str(tmp_path / "again.pcapng"), trace.meta, trace.entries)
    assert (tmp_path / "again.pcapng").read_bytes() == path.read_bytes() and size == path.stat().st_size


def test_a_conversation_past_its_cap_keeps_its_start_and_its_end(tmp_path, capsys):
    cap = 64 * 1024
    conversation = Conversation(cap)
    reports = [n.to_bytes(4, "little").ljust(1000, b"\xaa") for n in range(500)]
    most = 0
    for n, report in enumerate(reports):
        (conversation.received if n % 2 else conversation.sent)(report)
        most = max(most, conversation.held())
    # The cap holds, give or take the segment being filled: an eighth of it.
    assert most <= cap + cap // 8 + len(reports[0]) + REPORT_OVERHEAD
    recording = conversation.close()
    kept = [r for segment in recording.segments for r in segment[1::2]]
    assert recording.dropped is not None
    assert len(kept) + recording.dropped.reports == len(reports)
    assert recording.dropped.size == sum(map(len, reports)) - sum(map(len, kept))
    head = recording.segments[0][1::2]
    assert kept[: len(head)] == reports[: len(head)] and kept[len(head) :] == reports[-(len(kept) - len(head)) :]

    events = [(recording.segments[0][0] - 1, {"event": "add", "vid": 1, "pid": 2, "stage": "flashloader"})]
    path = tmp_path / "capped.pcapng"
    tf.write_file(str(path), tf.encode({"version": "t"}, recording.segments, placed(events, recording)))
    entries = tf.read(str(path)).entries
    gap = next(i for i, e in enumerate(entries) if e.kind == tf.EVENT and e.event["event"] == "dropped")
    assert [e.data for e in entries[1:gap]] == head
    assert entries[gap].event == {
        "event": "dropped",
        "reports": recording.dropped.reports,
        "bytes": recording.dropped.size,
        "cap": cap,
    }
    assert [e.data for e in entries[gap + 1 :]] == kept[len(head) :]
    assert main(["trace", "show", str(path)]) == 0
    assert (
        f"{recording.dropped.reports} reports ({recording.dropped.size} bytes) not kept here" in capsys.readouterr().out
    )


async def test_a_live_job_past_its_cap_writes_its_start_and_its_end_and_says_so(tmp_path):
    whole, capped = tmp_path / "whole", tmp_path / "capped"
    for directory, cap in ((whole, TraceSettings.max_job_bytes), (capped, 24 * 1024)):
        settings = TraceSettings(str(directory), keep="all", max_job_bytes=cap)
        assert (await run_one(trace_recipe(settings), board_spec(()))).result == "success"
    (full,) = (tf.read(str(p)) for p in whole.glob("*.pcapng"))
    (cut,) = (tf.read(str(p)) for p in capped.glob("*.pcapng"))
    (dropped,) = [e.event for e in cut.entries if e.kind == tf.EVENT and e.event["event"] == "dropped"]
    assert dropped["cap"] == 24 * 1024 and not any(
        e.event["event"] == "dropped" for e in full.entries if e.kind == tf.EVENT
    )
    reports, kept = [e.data for e in full.reports()], [e.data for e in cut.reports()]
    head = next(i for i, e in enumerate(cut.entries) if e.event.get("event") == "dropped")
    head = sum(e.kind != tf.EVENT for e in cut.entries[:head])
    # The same board's conversation, less the dropped reports between its start and its end.
    assert kept[:head] == reports[:head] and kept[head:] == reports[head + dropped["reports"] :]
    assert sum(map(len, kept)) <= 24 * 1024


async def test_traces_ending_together_are_written_in_one_hop_and_one_failing_fails_alone(monkeypatch):
    from gangd.trace import recorder

    hops: list[int] = []
    to_thread = trio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):
        hops.append(len(args[0]))
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)

    def broken() -> str:
        raise OSError("disk full")

    results: dict[int, object] = {}

    async def one(n: int) -> None:
        try:
            results[n] = await recorder._writer().write(broken if n == 2 else (lambda: f"trace{n}"))
        except OSError as exc:
            results[n] = exc

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(one, n)
    assert [results[n] for n in (0, 1, 3, 4)] == ["trace0", "trace1", "trace3", "trace4"]
    assert isinstance(results[2], OSError)
    assert hops == [5]  # queued before the writer first ran: one batch, one thread hop
