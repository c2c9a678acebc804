"""The ROM stage over SDP: HAB reporting, memory writes, and when a jump is (not) taken."""

from __future__ import annotations

import pytest
from spsdk.sdp.commands import ResponseValue
from spsdk.sdp.error_codes import StatusCode
from spsdk.sdp.exceptions import SdpCommandError

from ..conftest import srk_faults
from ..helpers import BAD_FLASHLOADERS
from .flow import RT1020_ROM_PID, open_sdp

PORT = "1-1.1"


@pytest.fixture
def rom(hub, events, boards):
    def start(**fields):
        board = hub.plug(PORT, boards(**fields))
        return board, events.next(PORT, "add", pid=RT1020_ROM_PID).devnode

    return start


def test_open_part_reports_unlocked_and_writes_registers(rom):
    board, devnode = rom()
    with open_sdp(devnode) as sdp:
        assert sdp.write(0x2020_0000, 0x1234_5678)
        assert sdp.hab_status == ResponseValue.UNLOCKED
        assert sdp.read_safe(0x2020_0000, 4) == bytes.fromhex("78563412")
    assert board.ram.read(0x2020_0000, 4) == bytes.fromhex("78563412")


def test_write_outside_ram_is_refused(rom):
    _, devnode = rom()
    with open_sdp(devnode) as sdp, pytest.raises(SdpCommandError):
        sdp.write(0x6000_0000, 1)


def test_jump_to_garbage_stays_in_rom_with_hab_error(rom, events, flashloader_image):
    board, devnode = rom()
    image, jump = flashloader_image
    with open_sdp(devnode) as sdp:
        assert sdp.write_file(0x2000_0000, image)
        sdp.jump_and_run(jump + 4)  # not where the IVT is
        assert sdp.read_status() == 0x3333_3333
    assert board.stage == "rom"
    assert [r.status for r in board.commands("jump-address")] == [0x3333_3333]


@pytest.mark.parametrize("data", [b[1] for b in BAD_FLASHLOADERS if b[3]], ids=[b[0] for b in BAD_FLASHLOADERS if b[3]])
def test_the_rom_refuses_what_check_config_refuses(rom, data):
    """The simulated ROM and `gangd check-config` share one check (gangd/config/bootimage.py)."""
    board, devnode = rom()
    with open_sdp(devnode) as sdp:
        assert sdp.write_file(0x2000_0000, data)
        sdp.jump_and_run(0x2000_0400)
        assert sdp.read_status() == 0x3333_3333
    assert board.stage == "rom"


def test_closed_part_refuses_unsigned_image_and_takes_signed_one(rom, events, hab_keys, signed_loader):
    """Closed by its SEC_CONFIG[1] fuse, holding the keys' SRK hash: HAB runs only the signed image."""
    from gangd.config.secure_boot import parse_container, unsigned_copy

    board, devnode = rom(faults=(*srk_faults(hab_keys.table), "otp:index=6,value=2"))
    signed, signed_jump = signed_loader
    unsigned = unsigned_copy(signed, parse_container(signed, "loader"))
    with open_sdp(devnode) as sdp:
        assert sdp.write_file(0x2000_0000, unsigned)
        assert sdp.hab_status == StatusCode.HAB_IS_LOCKED.tag  # spsdk's reading of 0x12343412
        sdp.jump_and_run(signed_jump)
        assert sdp.read_status() == 0x3333_3333
        assert board.stage == "rom"
        assert sdp.write_file(0x2000_0000, signed)
        sdp.jump_and_run(signed_jump)
    assert events.next(PORT, "add", pid=0x0073)
    assert board.hab.boot_report is not None and board.hab.boot_report.words() == [0xF0, 0xCC, 0x99, 0]
