"""A field trace replayed behind an emulated /dev/hidrawN: `gangd sim --hidraw --replay FILE` and
`gangd run --config` on its production path (libudev, hidraw, HIDIOCGRAWINFO), ending as recorded."""

from __future__ import annotations

from pathlib import Path

from gangd.service.records import RecordStore
from gangd.trace import file as tf

from .conftest import GANGD

TRACES = Path(__file__).parents[1] / "data" / "traces"


def test_a_marginal_boards_trace_replays_through_hidraw_as_recorded(hidraw_sim, processes, tmp_path):
    trace = tf.read(str(TRACES / "marginal.pcapng"))
    sim = hidraw_sim("--replay", str(TRACES / "marginal.pcapng"))
    state = tmp_path / "state"
    gangd = processes(
        ["umockdev-wrapper", GANGD, "run", "--config", str(TRACES / "recipe.toml"), "--state-dir", str(state)]
        + ["--metrics-address", "127.0.0.1:0", "--stop-grace", "10"],
        env=sim.env,
    )
    gangd.wait_entry(lambda e: e.get("event") == "job finished", 60, "the replayed board's job to finish")
    # Every enumeration the trace recorded (a third one, the reset into the ROM after the job, when
    # the recorder saw it before the job's trace was closed): wait for them all before gangd, the
    # uevents' listener, goes away.
    adds = sum(1 for e in trace.entries if e.kind == tf.EVENT and e.event.get("event") == "add")
    sim.wait_events(lambda events: sum(e["action"] == "add" for e in events) >= adds)
    assert gangd.stop() == 0, gangd.stderr
    store = RecordStore(state / "records.sqlite")
    (record,) = store.jobs()
    store.close()
    assert (record["result"], record["reason"]) == (trace.meta["result"], trace.meta["reason"])
    assert (
        (record["board_id"], record["flash_clock_mhz"])
        == (trace.meta["board"], trace.meta["flash_mhz"])
        == (
            "62032801b65c1c28",
            100,
        )
    )
