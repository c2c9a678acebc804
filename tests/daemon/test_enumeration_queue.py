"""gangd and the kernel's enumeration queue: which controller a port is on, how long a board
coming back may take on a crowded controller, and the floor that follows from it."""

from __future__ import annotations

import dataclasses
import os

import pytest
import trio
import trio.testing

from gangd.core.bus import ADDRESS0_S, HostControllers, enumeration_allowances
from gangd.core.bus_floor import BoardTimes, advice, batch_floor_s
from gangd.core.errors import ReplugTimeout
from gangd.core.events import ADD, PortEvent
from gangd.core.physics import Physics
from gangd.engine.floor import board_times
from gangd.io.topology import host_controllers
from gangd.sim import TimingModel
from gangd.sim.hub import default_port_paths
from gangd.station.port import Port

RT1020_ROM = (0x1FC9, 0x0130)


def test_buses_under_one_pci_function_are_one_controller(tmp_path):
    """An xHCI's USB 2 and USB 3 root hubs sit under its PCI function in sysfs; an added card is
    another function, another controller."""
    devices = tmp_path / "bus" / "usb" / "devices"
    devices.mkdir(parents=True)
    for bus, pci in (("1", "0000:00:14.0"), ("2", "0000:00:14.0"), ("3", "0000:03:00.0")):
        root_hub = tmp_path / "devices" / "pci0000:00" / pci / f"usb{bus}"
        root_hub.mkdir(parents=True)
        os.symlink(root_hub, devices / f"usb{bus}")
    top = tmp_path / "devices" / "usb6"  # a root hub at the top of the tree (umockdev's testbed)
    top.mkdir()
    os.symlink(top, devices / "usb6")
    controllers = host_controllers(["1-1.1", "2-1", "3-4.2", "5-1", "6-1"], sys_root=str(tmp_path))
    assert controllers.of("1-1.1") == controllers.of("2-3") == "0000:00:14.0"
    assert controllers.of("3-4.2") == "0000:03:00.0"
    assert controllers.of("5-1") == "usb5"  # not in sysfs: a controller of its own
    assert controllers.of("6-1") == "usb6"  # no controller device above it: the same
    assert controllers.layout(["1-1.1", "1-1.2", "2-1", "3-4.2"]) == {
        "0000:00:14.0": {"1-1": 2, "2-1": 1},
        "0000:03:00.0": {"3-4": 1},
    }


def test_each_port_may_wait_for_the_other_ports_of_its_controller():
    paths = default_port_paths(6, 2, 2)  # three ports on each of two buses
    allowances = enumeration_allowances(paths, HostControllers())
    assert allowances == {path: pytest.approx(2 * ADDRESS0_S) for path in paths}
    one = enumeration_allowances(default_port_paths(6, 2, 1), HostControllers())
    assert list(one.values()) == [pytest.approx(5 * ADDRESS0_S)] * 6


@pytest.mark.trio
async def test_sixteen_boards_queued_on_one_controller_all_pass(line, recipe):
    """Sixteen flashloaders come up one after another on one controller, the last well past a
    0.3 s wait-replug deadline, and their reboots queue behind them, past a 0.2 s reset deadline:
    waiting its turn in the kernel's queue, no board is a failed board, nor a new one to program."""
    deadlines = dataclasses.replace(recipe.deadlines, replug_s=0.3, reset_replug_s=0.2)
    quick = dataclasses.replace(recipe, deadlines=deadlines)
    run = await line(16, recipe_override=quick, timing=TimingModel(time_scale=0.25), hub_options={"root_ports": 2})
    results = await run.wait_results(16)
    assert [r.result for r in results] == ["success"] * 16, [r.reason for r in results]
    assert all(p.enumeration_allowance_s == pytest.approx(15 * ADDRESS0_S) for p in run.station.ports.values())
    # 16 plugs, 16 flashloaders and 16 reboots, one at a time
    seen = run.station.changes.version
    with trio.fail_after(10):
        while len(run.hub.enumeration.windows) < 48 or any(p.attached is None for p in run.station.ports.values()):
            seen = await run.station.changes.wait(seen)
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    rebooted = [p for p in run.station.ports.values() if p.attached.pid == RT1020_ROM[1]]
    assert len(rebooted) == 16 and {p.state for p in rebooted} == {"idle"}  # watched, not programmed again
    assert run.station.jobs_finished == 16


@pytest.mark.trio
async def test_a_board_waiting_its_turn_is_not_late(rt1020, autojump_clock):
    """The flashloader comes 1.5 s after a 1 s deadline: within the controller's queue, not failed."""
    port = Port("1-1.1", None, rt1020)
    port.enumeration_allowance_s = 1.0
    rom = PortEvent(ADD, "1-1.1", *RT1020_ROM, "S1", "/dev/hidraw1")

    async def comes_back() -> None:
        await trio.sleep(1.5)
        port.deliver(rom)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(comes_back)
        assert await port.wait_for_stage("rom", 1.0, "wait-replug") == rom
    port.enumeration_allowance_s = 0.0
    with pytest.raises(ReplugTimeout, match="within 1 s"):
        await port.wait_for_stage("rom", 1.0, "wait-replug")


def test_the_floor_serialises_enumeration_per_controller():
    board = BoardTimes(rom_s=0.05, boot_s=0.3685, work_s=0.12)
    alone = batch_floor_s(board, ["1-1.1"])
    assert alone["total"] == pytest.approx(alone["parallel"])
    one = batch_floor_s(board, default_port_paths(64, 8, 1))
    two = batch_floor_s(board, default_port_paths(64, 8, 2))
    assert one["total"] == pytest.approx(2 * 64 * ADDRESS0_S + 0.12)  # plug and jump, one at a time
    assert two["total"] == pytest.approx(2 * 32 * ADDRESS0_S + 0.12)  # a second controller halves it
    assert one["parallel"] == two["parallel"] == alone["parallel"]  # the old floor saw no difference
    crowded = batch_floor_s(board, default_port_paths(16, 1, 1), budget=8)
    assert crowded["bandwidth"] == pytest.approx(alone["parallel"] + 0.12)  # two waves on one root port


@pytest.mark.trio
async def test_status_shows_each_controllers_queue(line):
    """A board whose flashloader has not come back is in its controller's queue on /status."""
    run = await line(4, faults={"2-1.1": ("no-reenumerate",)}, hub_options={"root_ports": 2, "controllers": 2})
    port = run.station.ports["2-1.1"]
    seen = run.station.changes.version
    with trio.fail_after(10):
        while not (port.step == "wait-replug" and not port.present):
            seen = await run.station.changes.wait(seen)
    controllers = run.station.status()["controllers"]
    assert sorted(controllers) == ["usb1", "usb2"]
    assert {c: (v["root_ports"], v["ports"]) for c, v in controllers.items()} == {
        "usb1": (["1-1"], 2),
        "usb2": (["2-1"], 2),
    }
    # the other boards go on with their jobs meanwhile: one may be between its stages just now
    usb2 = controllers["usb2"]
    assert "2-1.1" in usb2["returning"] and "2-1.1" not in controllers["usb1"]["returning"]
    assert usb2["queue_s"] == pytest.approx(len(usb2["returning"]) * ADDRESS0_S, abs=1e-3)


def test_the_advice_says_a_second_controller_doubles_throughput_and_a_second_hub_does_not(recipe):
    """`gangd check-config`'s floor line for 32 ports: behind one hub, behind two hubs on the same
    controller, and with the second hub on a second controller (a USB card)."""
    board = board_times(recipe, Physics())

    def boards_per_hour(paths: list[str]) -> float:
        line = advice(paths, HostControllers(), jumps=True, board=board)[-1]
        assert line.startswith(f"floor for this recipe: {len(paths)} boards plugged at once"), line
        return float(line.split(" s, ")[1].split(" boards/h")[0].replace(",", ""))

    one_hub = boards_per_hour(default_port_paths(32, 2, 1))
    two_hubs = boards_per_hour(default_port_paths(32, 4, 1))
    two_controllers = boards_per_hour(default_port_paths(32, 4, 2))
    assert two_hubs == one_hub  # the hub adds bandwidth, not enumeration: the queue is the bound
    assert 1.9 < two_controllers / one_hub <= 2.0  # a second queue halves the batch, bar the last board's work


def test_the_floors_packet_sizes_are_the_simulators():
    """The product's floor takes the report payloads from their sources; the simulator derives its
    own from the HID descriptors: the two agree."""
    from gangd.core.physics import MBOOT_PACKET_SIZE, SDP_DATA_REPORT
    from gangd.sim.links import MBOOT_HID_PACKET_SIZE, SDP_REPORT_DATA

    assert (MBOOT_PACKET_SIZE, SDP_DATA_REPORT) == (MBOOT_HID_PACKET_SIZE, SDP_REPORT_DATA)
