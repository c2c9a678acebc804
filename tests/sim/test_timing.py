"""The timing model holds at real time: a 1 MiB write-memory takes what the model says.

The expectation is computed from the model (reports at the HID interval, NOR pages programmed
per packet), never written into the test as a number.
"""

from __future__ import annotations

import os
import time

import pytest

from gangd.sim import TimingModel
from gangd.sim.links import MBOOT_HID_PACKET_SIZE

from .flow import configure_flexspi, load_flashloader, open_mboot

PORT = "1-1.4"
ADDRESS = 0x6000_0000
SIZE = 1024 * 1024


@pytest.mark.timing
def test_one_mebibyte_write_takes_the_modelled_time(hub, events, boards, flashloader_image):
    model = TimingModel()  # the defaults, at time scale 1
    board = hub.plug(PORT, boards(timing=model))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    data = os.urandom(SIZE)
    with open_mboot(devnode, timeout_ms=10_000) as mboot:
        configure_flexspi(mboot)
        assert mboot.write_memory(0x2020_0000, b"\0" * 16)  # learns the packet size first
        charged_before = board.clock.charged_s
        started = time.monotonic()
        assert mboot.write_memory(ADDRESS, data)
        elapsed = time.monotonic() - started
        charged = board.clock.charged_s - charged_before
    expected = model.write_memory_s(ADDRESS, SIZE, MBOOT_HID_PACKET_SIZE, to_flash=True)
    # The board charged exactly the model (the model is what the simulator does) ...
    assert charged == pytest.approx(expected, rel=1e-9)
    # ... and the wall clock agrees within 10 %.
    assert abs(elapsed - expected) <= 0.10 * expected, f"took {elapsed:.3f} s, model says {expected:.3f} s"
    print(f"1 MiB write-memory: {elapsed:.3f} s measured, {expected:.3f} s modelled")
    assert board.flash_image(ADDRESS, SIZE) == data
