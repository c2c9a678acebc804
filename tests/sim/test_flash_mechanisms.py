"""The two real causes of 20106 in the simulated flashloader, driven with spsdk's McuBoot.

docs/FLASHLOADER.md: erase runs at the safe clock and is read back at the option word's clock; a
marginal read path fails that read-back (and returns wrong bytes with status 0 on a plain read),
and block-protected flash ignores the erase, so the read-back finds the old contents.
"""

from __future__ import annotations

import pytest
from spsdk.mboot.error_codes import StatusCode
from spsdk.mboot.exceptions import McuBootCommandError

from gangd.sim import FaultSpecError, parse_fault

from .flow import RT1020_FLASHLOADER_PID, RT1020_ROM_PID, load_flashloader, open_mboot

PORT = "1-1.1"
BASE = 0x6000_0000
IMAGE = bytes(range(256)) * 176  # 45,056 bytes: the user's image size


def configure(mboot, option: int) -> None:
    assert mboot.fill_memory(0x2000, 4, option)
    assert mboot.configure_memory(0x2000, 9)


def status_of(call, *args) -> int:
    with pytest.raises(McuBootCommandError) as failure:
        call(*args)
    return failure.value.error_value


def test_marginal_read_path_fails_the_erase_verify_at_133_mhz_only(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("marginal-read:max-mhz=100",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure(mboot, 0xC000_0007)  # 133 MHz on RT1020
        assert status_of(mboot.flash_erase_region, BASE, 45056, 0) == StatusCode.FLEXSPINOR_COMMANDFAILURE
        configure(mboot, 0xC000_0006)  # 100 MHz: reads are reliable on this board
        assert mboot.flash_erase_region(BASE, 45056, 0)
        assert mboot.write_memory(BASE, IMAGE)
        assert mboot.read_memory(BASE, len(IMAGE)) == IMAGE


def test_marginal_read_returns_wrong_bytes_with_success(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("marginal-read:max-mhz=100",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure(mboot, 0xC000_0006)
        assert mboot.flash_erase_region(BASE, 45056, 0)
        assert mboot.write_memory(BASE, IMAGE)
        configure(mboot, 0xC000_0007)
        back = mboot.read_memory(BASE, len(IMAGE))  # status 0 ...
        assert back != IMAGE  # ... and wrong bytes
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE  # the cells are right: only the read path is not


def test_verify_writes_off_hides_the_marginal_read(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("marginal-read:max-mhz=100",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        assert mboot.set_property(10, 0)
        configure(mboot, 0xC000_0007)
        assert mboot.flash_erase_region(BASE, 45056, 0)


def test_write_protected_flash_ignores_the_erase(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("write-protect:persist=always",)))
    old = board.flash_image(BASE, 16)
    assert old != b"\xff" * 16  # an application wrote itself, then protected the flash
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure(mboot, 0xC000_0001)  # even at the safe clock: the erase did not happen
        assert status_of(mboot.flash_erase_region, BASE, 4096, 0) == StatusCode.FLEXSPINOR_COMMANDFAILURE
        assert mboot.read_memory(BASE, 16) == old


def test_protection_on_blank_flash_shows_at_the_first_program(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("write-protect:persist=always",)))
    board.flash.cells.clear()  # a blank part whose status register came with BP bits set
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure(mboot, 0xC000_0007)
        assert mboot.flash_erase_region(BASE, 4096, 0)  # already blank: the read-back passes
        assert status_of(mboot.write_memory, BASE, IMAGE[:512]) == StatusCode.FLEXSPINOR_COMMANDFAILURE
    assert board.flash_image(BASE, 512) == b"\xff" * 512


def _protected_after(hub, events, flashloader_image, board, how: str) -> bool:
    """Put the board through a reset, a power cycle or a replug; is its flash still protected?"""
    devnode = load_flashloader(events, PORT, *flashloader_image)
    if how == "reset":
        with open_mboot(devnode) as mboot:
            mboot.reset(reopen=False)
        events.next(PORT, "remove", pid=RT1020_FLASHLOADER_PID)
    elif how == "power-cycle":
        hub.port(PORT).power_cycle()
    else:
        hub.unplug(PORT)
        hub.plug(PORT, board)
    events.next(PORT, "add", pid=RT1020_ROM_PID)
    return board.flash.protected


@pytest.mark.parametrize(
    ("persist", "how", "still"),
    [
        ("power", "reset", True),  # a USB reset keeps the flash's volatile state
        ("power", "power-cycle", False),
        ("power", "replug", False),
        ("always", "power-cycle", True),
        ("always", "replug", True),
    ],
)
def test_protection_persistence(hub, events, boards, flashloader_image, persist, how, still):
    board = hub.plug(PORT, boards(faults=(f"write-protect:persist={persist}",)))
    assert board.flash.protected
    assert _protected_after(hub, events, flashloader_image, board, how) is still


@pytest.mark.parametrize(
    "spec", ["marginal-read", "marginal-read:max-mhz=0", "marginal-read:max-mhz=fast", "write-protect:persist=soon"]
)
def test_bad_mechanism_specs_are_refused(spec):
    with pytest.raises(FaultSpecError):
        parse_fault(spec)
