"""The simulated hub: events like udev's, new device nodes per enumeration, the operator model."""

from __future__ import annotations

import time

from gangd.sim import BoardFactory, Operator, SimHub, TimingModel

from ..helpers import EventWaiter
from .flow import RT1020_ROM_PID, load_flashloader, open_mboot


def test_plug_and_unplug_emit_add_and_remove(hub, events, boards):
    board = hub.plug("1-1.5", boards())
    added = events.next("1-1.5", "add")
    assert (added.vid, added.pid, added.serial) == (0x1FC9, RT1020_ROM_PID, board.serial)
    hub.unplug("1-1.5")
    removed = events.next("1-1.5", "remove")
    assert removed.devnode == added.devnode and hub.board("1-1.5") is None


def test_each_enumeration_gets_a_new_devnode_on_the_same_port(hub, events, boards, flashloader_image):
    hub.plug("1-1.6", boards())
    devnode = load_flashloader(events, "1-1.6", *flashloader_image)
    with open_mboot(devnode) as mboot:
        mboot.reset(reopen=False)
    rom_again = events.next("1-1.6", "add", pid=RT1020_ROM_PID)
    nodes = [e.devnode for e in events.events if e.port == "1-1.6" and e.action == "add"]
    assert len(set(nodes)) == 3 and rom_again.devnode == nodes[-1]


def test_operator_replaces_a_finished_board_after_the_delay(rt1020):
    with SimHub(["1-1.1", "1-1.2"]) as hub:
        events = EventWaiter(hub)
        operator = Operator(hub, BoardFactory(rt1020, TimingModel(time_scale=0)), delay_s=0.2)
        operator.populate()
        first = events.next("1-1.1", "add")
        events.next("1-1.2", "add")
        started = time.monotonic()
        operator.finished("1-1.1")
        events.next("1-1.1", "remove", timeout=5)
        second = events.next("1-1.1", "add", timeout=5)
        assert time.monotonic() - started >= 0.2
        assert second.serial != first.serial and operator.replaced == 1
        assert [e.port for e in events.events].count("1-1.2") == 1  # the other port was left alone
        operator.stop()
        assert not hub.errors
