"""Fault injection: the spec language, scripted and random firing, and each kind's effect."""

from __future__ import annotations

import pytest
from spsdk.exceptions import SPSDKConnectionError
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError

from gangd.io.transport import DeviceGoneError
from gangd.sim import FaultPlan, FaultSpecError, TimingModel, parse_fault
from gangd.sim.links import MBOOT_HID_PACKET_SIZE

from .flow import RT1020_FLASHLOADER_PID, configure_flexspi, load_flashloader, open_mboot

PORT = "1-1.2"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("boom", "unknown kind"),
        ("status:cmd=flash-erase-region", "needs code"),
        ("status:cmd=erase,code=1", "unknown command"),
        ("status:cmd=write-memory,code=x", "not an integer"),
        ("status:cmd=write-memory,code=1,p=2", "between 0 and 1"),
        ("no-response", "needs cmd"),
        ("otp:value=1", "needs index"),
        ("corrupt-readback:colour=red", "unknown key"),
        ("slow-flash:factor=fast", "factor='fast' is not a number"),
        ("slow-flash:factor=0", "factor must be more than 0"),
        ("status:cmd=write-memory,code=1,p=nan", "not a finite number"),
        ("status:cmd=write-memory,code=1,nth=0", "nth counts from 1"),
        ("disconnect:cmd=write-memory,after=-1", "after counts bytes"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(spec)


def test_probability_is_reproducible_from_the_seed():
    def draws(seed):
        plan = FaultPlan(["status:cmd=write-memory,code=1,p=0.3"], seed=seed)
        return [plan.fire("status", "write-memory") is not None for _ in range(200)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    assert 30 < sum(draws(5)) < 90


def test_no_response_leaves_spsdk_waiting_until_its_timeout(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("no-response:cmd=flash-erase-region,nth=1",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode, timeout_ms=200) as mboot:
        configure_flexspi(mboot)
        with pytest.raises(McuBootCommandError) as failure:
            mboot.flash_erase_region(0x6000_0000, 4096, 0)
        assert failure.value.error_value == 10004  # spsdk's "no response" status
        assert mboot.flash_erase_region(0x6000_0000, 4096, 0)  # the next one is answered


def test_hang_stops_all_answers(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("hang:cmd=write-memory",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode, timeout_ms=100) as mboot:
        configure_flexspi(mboot)
        with pytest.raises(McuBootCommandError):
            mboot.write_memory(0x2020_0000, b"\0" * 64)
        with pytest.raises(McuBootCommandError):
            mboot.get_property(1)
    assert board.hung


def test_disconnect_mid_write_unplugs_the_board(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("disconnect:cmd=write-memory,after=8192",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(0x6000_0000, 0x10000, 0)
        with pytest.raises((DeviceGoneError, McuBootConnectionError, SPSDKConnectionError)):
            mboot.write_memory(0x6000_0000, b"\x11" * 0x10000)
    assert events.next(PORT, "remove", pid=RT1020_FLASHLOADER_PID)
    assert board.unplugged.is_set() and hub.board(PORT) is None
    # Part of the data reached the flash before the cable went: the whole pages of the whole
    # packets sent (the flashloader programs a page once its buffer is full; the partial one is lost).
    programmed = 8192 // MBOOT_HID_PACKET_SIZE * MBOOT_HID_PACKET_SIZE // 256 * 256
    assert board.flash_image(0x6000_0000, programmed) == b"\x11" * programmed
    assert board.flash_image(0x6000_0000 + programmed, 256) == b"\xff" * 256


def test_corrupt_readback_flips_one_bit(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("corrupt-readback:nth=1",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(0x6000_0000, 4096, 0)
        first = mboot.read_memory(0x6000_0000, 4096)
        second = mboot.read_memory(0x6000_0000, 4096)
    assert second == b"\xff" * 4096
    flipped = int.from_bytes(first, "big") ^ int.from_bytes(second, "big")
    assert bin(flipped).count("1") == 1


def test_flashloader_that_never_reappears(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("no-reenumerate",)))
    with pytest.raises(AssertionError, match="no add event"):
        load_flashloader(events, PORT, *flashloader_image, timeout=1)
    assert hub.board(PORT) is board  # still physically there, just silent


def test_preburned_otp(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("otp:fuse=SRK_HASH[31:0],value=0xdeadbeef,locked=1",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        assert mboot.efuse_read_once(31) == 0xDEADBEEF
        with pytest.raises(McuBootCommandError):
            mboot.efuse_program_once(31, 1)


def test_slow_flash_costs_more_model_time(boards):
    from gangd.sim.board import SimBoard

    normal = SimBoard(boards())
    slow = SimBoard(boards(faults=("slow-flash:factor=3",)))
    assert slow.clock.model.erase_plan_s(0, 0x10000) == pytest.approx(3 * normal.clock.model.erase_plan_s(0, 0x10000))


def test_flaky_port_fails_whichever_board_sits_in_it(rt1020, flashloader_image):
    from gangd.sim import BoardFactory, SimHub

    from ..helpers import EventWaiter

    with SimHub(["1-1.1", "1-1.2"], port_faults={"1-1.1": ["status:cmd=flash-erase-region,code=20106"]}) as hub:
        events = EventWaiter(hub)
        factory = BoardFactory(rt1020, TimingModel(time_scale=0))
        results = {}
        for round_ in range(2):
            for port in ("1-1.1", "1-1.2"):
                hub.unplug(port)
                hub.plug(port, factory())
                devnode = load_flashloader(events, port, *flashloader_image)
                with open_mboot(devnode) as mboot:
                    configure_flexspi(mboot)
                    try:
                        results[(round_, port)] = mboot.flash_erase_region(0x6000_0000, 4096, 0)
                    except McuBootCommandError as exc:
                        results[(round_, port)] = exc.error_value
        assert not hub.errors
    assert results == {(0, "1-1.1"): 20106, (0, "1-1.2"): True, (1, "1-1.1"): 20106, (1, "1-1.2"): True}
