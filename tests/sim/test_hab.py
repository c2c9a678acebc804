"""HAB in the simulated ROM and flashloader: the SRK hash, open and closed parts, the HAB report
the secure-boot proof reads, and the `hab:` faults."""

from __future__ import annotations

import pytest
from spsdk.sdp.commands import ResponseValue

from gangd.sim.faults import FaultSpecError, parse_fault
from gangd.sim.flashloader import HAB_REPORT_PROPERTY
from gangd.sim.hab import SRK_HASH_INDEX, other_key_hash

from ..conftest import srk_faults
from .flow import RT1020_ROM_PID, load_flashloader, open_mboot, open_sdp

PORT = "1-1.1"
SUCCESS_OPEN = [0xF0, 0xF0, 0x66, 0]  # status SUCCESS, config OPEN, state NONSECURE, no events


def start(hub, events, boards, faults=()):
    return hub.plug(PORT, boards(faults=faults))  # load_flashloader waits for its ROM


def hab_report(devnode: str, index: int = 0) -> list[int]:
    with open_mboot(devnode) as mboot:
        return mboot.get_property(HAB_REPORT_PROPERTY, index)


def test_open_part_with_the_srk_burned_reports_both_signed_images_authentic(
    hub, events, boards, hab_keys, signed_loader, signed_app
):
    board = start(hub, events, boards, srk_faults(hab_keys.table))
    board.flash.program(0, signed_app)  # as gangd writes it at 0x60000000
    devnode = load_flashloader(events, PORT, *signed_loader)
    assert hab_report(devnode) == SUCCESS_OPEN
    assert hab_report(devnode, 0x6000_1000) == SUCCESS_OPEN
    assert not board.hab_closed


def test_bad_signature_is_logged_on_an_open_part_which_still_runs_the_image(
    hub, events, boards, hab_keys, signed_loader
):
    board = start(hub, events, boards, (*srk_faults(hab_keys.table), "hab:bad-signature"))
    devnode = load_flashloader(events, PORT, *signed_loader)  # open: runs whatever HAB found
    assert hab_report(devnode) == [0x33, 0xF0, 0x66, 1]
    assert board.hab.boot_report.events == ("signature verification failed",)


def test_a_part_holding_another_keys_hash_reports_the_mismatch(hub, events, boards, signed_loader):
    board = start(hub, events, boards, ("hab:wrong-srk",))
    assert [board.otp.read(SRK_HASH_INDEX + i) for i in range(8)] == other_key_hash(board.serial)
    devnode = load_flashloader(events, PORT, *signed_loader)
    assert board.hab.boot_report.events == ("the SRK table's hash differs from the SRK_HASH fuses",)
    assert hab_report(devnode)[0] == 0x33


def test_burning_sec_config1_closes_the_part(hub, events, boards, hab_keys):
    board = start(hub, events, boards, srk_faults(hab_keys.table))
    devnode = events.next(PORT, "add", pid=RT1020_ROM_PID).devnode
    with open_sdp(devnode) as sdp:
        sdp.read_status()
        assert sdp.hab_status == ResponseValue.UNLOCKED
    board.otp.burn(6, 0x2)  # BOOT_CFG1 SEC_CONFIG[1]
    with open_sdp(devnode) as sdp:
        sdp.read_status()
        assert sdp.hab_status == ResponseValue.LOCKED.tag


def test_hab_fault_specs():
    assert parse_fault("hab:bad-signature").mode == "bad-signature"
    with pytest.raises(FaultSpecError, match="hab needs one of"):
        parse_fault("hab:typo")
