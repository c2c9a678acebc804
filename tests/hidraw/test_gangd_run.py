"""`gangd run --config` on its production path: real libudev and pyudev for the boards, real
/dev/hidrawN opened, id-checked with HIDIOCGRAWINFO, polled, read and written, and a hub port
power-cycled through its sysfs `disable` attribute, against simulated boards in the ROM stage
behind emulated hidraw nodes."""

from __future__ import annotations

from pathlib import Path

from gangd.service.records import RecordStore
from gangd.sim.images import build_flashloader_image

from ..support import Process
from .conftest import GANGD

EXAMPLE = Path(__file__).parents[2] / "config" / "rt1020.toml"
PORTS = [f"1-1.{n}" for n in range(1, 6)]


def line_config(directory: Path) -> Path:
    """The example configuration for five ports, with port power-cycling allowed and a 3 s command
    deadline (a hung board is found sooner), with the files it names."""
    text = EXAMPLE.read_text()
    listed = '"1-1.1" = "A1"\n"1-1.2" = "A2"\n"1-1.3" = "A3"\n"1-1.4" = "A4"\n'
    for old, new in [
        (listed, "".join(f'"{port}" = "A{n}"\n' for n, port in enumerate(PORTS, 1))),
        ("power_cycle = false", "power_cycle = true"),
        ("command_s = 10 ", "command_s = 3 "),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    (directory / "line.toml").write_text(text)
    (directory / "ivt_flashloader.bin").write_bytes(build_flashloader_image(load_address=0x2000_0000)[0])
    (directory / "app.bin").write_bytes(bytes(range(256)) * 176)  # 45,056 bytes
    return directory / "line.toml"


# ROM -> flashloader -> ROM after the final reset; the hung board's port is power-cycled once more.
EXPECTED_ENUMERATIONS = {"1-1.1": 3, "1-1.2": 3, "1-1.3": 3, "1-1.4": 5}


def adds(events: list[dict], port: str) -> int:
    return sum(1 for e in events if e["port"] == port and e["action"] == "add")


def test_gangd_run_programs_emulated_boards_and_refuses_a_foreign_node(hidraw_sim, processes, tmp_path):
    # Port 4's board hangs on its first write: gangd power-cycles the port through sysfs.
    # Port 5's first node answers with a keyboard's ids: the node number was reused between the
    # hotplug event and the open, and the id check must refuse it before a byte is sent.
    sim = hidraw_sim(
        "--hub", "5", "--port-fault", "1-1.4=hang:cmd=write-memory,nth=1", "--port-fault", "1-1.5=foreign-node:nth=1"
    )
    config = line_config(tmp_path)
    state = tmp_path / "state"
    gangd = processes(
        [
            "umockdev-wrapper",
            GANGD,
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "--metrics-address",
            "127.0.0.1:0",
            "--stop-grace",
            "10",
        ],
        env=sim.env,
    )

    def finished(p: Process) -> list[dict] | None:
        jobs = [line for line in p.json_lines() if line.get("event") == "job finished"]
        return jobs if len(jobs) >= 5 else None

    jobs = gangd.wait_until(finished, 60, "5 finished jobs")
    # A job ends when the reset is acknowledged; the boards' return to their ROM (one more node
    # each) follows on its own: wait for it before gangd, the uevents' listener, goes away.
    sim.wait_events(lambda events: all(adds(events, port) >= n for port, n in EXPECTED_ENUMERATIONS.items()))
    assert gangd.stop() == 0, gangd.stderr

    store = RecordStore(state / "records.sqlite")
    records = {row["port"]: row for row in store.jobs()}
    store.close()
    assert sorted(records) == PORTS and {job["port"] for job in jobs} == set(PORTS)
    for n, port in enumerate(PORTS[:4], 1):
        record = records[port]
        assert (record["result"], record["label"], record["serial"]) == ("success", f"A{n}", f"SIM00000{n}")
    refused = records["1-1.5"]
    assert refused["result"] == "failed"
    assert "not the expected board" in refused["reason"] and "is 046d:c31c, expected 1fc9:0130" in refused["reason"]
    assert len(refused["attempts"]) <= 1  # permanent: no retry on a node that is not the board

    # Each board went ROM -> flashloader -> ROM (the final reset) on its own port, a new node each
    # time; the hung one twice, with the port's power cut and restored in between.
    hung = records["1-1.4"]["attempts"]
    assert [(a["step"], a["action"]) for a in hung] == [("write", "power-cycle-port")]
    for port, enumerations in EXPECTED_ENUMERATIONS.items():
        nodes = [e["devnode"] for e in sim.events if e["port"] == port and e["action"] == "add"]
        assert len(nodes) == enumerations and len(set(nodes)) == enumerations, (port, nodes)
    # The refused board was never talked to: it is still in its ROM, on its first node.
    assert [e["action"] for e in sim.events if e["port"] == "1-1.5"] == ["add"]
