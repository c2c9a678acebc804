"""Enumeration serialised per host controller, as Linux's hub driver does it (gangd/sim/enumeration.py)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from gangd.core.events import ADD
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.hub import default_port_paths

from ..helpers import EventWaiter
from .flow import RT1020_ROM_PID, load_flashloader

# A tenth of real time: 16 enumerations of 131.5 ms become 0.21 s.
TENTH = TimingModel(time_scale=0.1)


def plug_all_at_once(hub: SimHub, factory: BoardFactory) -> dict[str, float]:
    """Plug a fresh board into every port without waiting; when each port's add came (monotonic)."""
    added: dict[str, float] = {}
    all_in = threading.Event()

    def seen(event) -> None:
        if event.action == ADD:
            added[event.port] = time.monotonic()
            if len(added) == len(hub.ports):
                all_in.set()

    hub.subscribe(seen)
    for path in hub.ports:
        hub.plug(path, factory(), wait=False)
    assert all_in.wait(10), f"only {sorted(added)} enumerated"
    return added


def overlapping(windows) -> int:
    """The most windows open at once."""
    edges = sorted([(w.start, 1) for w in windows] + [(w.end, -1) for w in windows])
    return max(itertools.accumulate(step for _, step in edges))


def test_sixteen_boards_on_one_controller_enumerate_one_after_another(rt1020):
    with SimHub(16, root_ports=2) as hub:
        started = time.monotonic()
        added = plug_all_at_once(hub, BoardFactory(rt1020, TENTH))
        window_s = TENTH.address0_s() * TENTH.time_scale
        windows = sorted(hub.enumeration.windows, key=lambda w: w.start)
        assert len(windows) == 16 and {w.port for w in windows} == set(hub.ports)
        # no two reset-to-SET_ADDRESS windows overlap, and none is shorter than the kernel's part
        for before, after in itertools.pairwise(windows):
            assert after.start >= before.end
        assert all(w.end - w.start >= window_s - 1e-9 for w in windows)
        # each board shows on the bus once its own window is over, and the last after all sixteen
        for w in windows:
            assert added[w.port] >= w.end
        assert max(added.values()) - started >= 16 * window_s
        assert not hub.errors


def test_two_controllers_enumerate_two_at_a_time(rt1020):
    """Judged from when each board shows on the bus (not from the queue's own windows, which a
    queue shared by both controllers would still draw side by side): on each controller one board
    a window after the other, and never more than two within one window, one per controller."""
    with SimHub(16, root_ports=2, controllers=2) as hub:
        assert {path.split("-")[0] for path in hub.ports} == {"1", "2"}
        # real time: the 131.5 ms windows dwarf a loaded machine's delay in plugging the sixteen
        model = TimingModel()
        started = time.monotonic()
        added = plug_all_at_once(hub, BoardFactory(rt1020, model))
        window_s = model.address0_s()
        windows = list(hub.enumeration.windows)
        by_controller = {c: [w for w in windows if w.controller == c] for c in ("usb1", "usb2")}
        assert [len(ws) for ws in by_controller.values()] == [8, 8]
        for ws in by_controller.values():
            assert overlapping(ws) == 1  # each controller one at a time
        assert overlapping(windows) == 2  # the two side by side
        arrivals = sorted((at, hub.controllers.of(port)) for port, at in added.items())
        for controller in ("usb1", "usb2"):
            times = [at for at, c in arrivals if c == controller]
            # a whole window between two boards of one controller (half of it: a loaded machine's
            # delay in delivering one add may shorten the gap seen, never halve it)
            assert all(b - a >= window_s / 2 for a, b in itertools.pairwise(times)), (controller, times)
        # at most two boards within any window, and the first two from different controllers
        assert all(c - a >= window_s / 2 for (a, _), _, (c, _) in zip(arrivals, arrivals[1:], arrivals[2:]))
        assert {arrivals[0][1], arrivals[1][1]} == {"usb1", "usb2"}
        assert arrivals[1][0] - arrivals[0][0] < window_s / 2
        # eight windows deep, not sixteen: the second controller halves the wait
        assert max(added.values()) - started < 12 * window_s
        assert not hub.errors


def test_an_uncontended_jump_reappears_after_the_whole_reenumeration(rt1020, flashloader_image):
    """The board's own part and the kernel's together are the model's 0.5 s when nobody queues."""
    model = TimingModel()
    assert model.device_boot_s() + model.address0_s() == model.reenumeration_s
    with SimHub(["1-1.1"]) as hub:
        events = EventWaiter(hub)
        hub.plug("1-1.1", BoardFactory(rt1020, model)())
        left = []
        hub.subscribe(lambda event: left.append(time.monotonic()) if event.pid == RT1020_ROM_PID else None)
        load_flashloader(events, "1-1.1", *flashloader_image)
        back = time.monotonic()
        windows = [w for w in hub.enumeration.windows if w.port == "1-1.1"]
        assert len(windows) == 2  # the plug and the flashloader
        assert windows[1].end - windows[1].start == pytest.approx(model.address0_s())
        # off the bus for the board's boot, then its turn: the 0.5 s, not more (nobody queued)
        gap = back - left[-1]
        assert model.reenumeration_s - 0.005 <= gap < model.reenumeration_s + 0.1
        assert not hub.errors


def test_port_paths_spread_root_ports_over_controllers():
    assert default_port_paths(4, 2) == ["1-1.1", "1-1.2", "1-2.1", "1-2.2"]
    assert default_port_paths(8, 4, 2) == ["1-1.1", "1-1.2", "1-2.1", "1-2.2", "2-1.1", "2-1.2", "2-2.1", "2-2.2"]


def test_a_board_unplugged_while_it_waits_takes_no_time(rt1020):
    """Unplugged before its turn, a board leaves the queue: the kernel's reset of an empty port
    fails at once, so the boards behind it move up."""
    model = TimingModel()
    with SimHub(8) as hub:
        paths = list(hub.ports)
        factory = BoardFactory(rt1020, model)
        for path in paths:
            hub.plug(path, factory(), wait=False)
        for path in paths[1:-1]:
            hub.unplug(path)
        hub.port(paths[-1]).wait_enumerated()
        first, last = sorted(hub.enumeration.windows, key=lambda w: w.start)
        assert (first.port, last.port) == (paths[0], paths[-1])
        assert last.start == pytest.approx(first.end)  # next in line once the first was done
        assert not hub.errors
