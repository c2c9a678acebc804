"""spsdk's McuBoot and SDP classes run the whole provisioning flow against the simulator."""

from __future__ import annotations

import os

import pytest
from spsdk.mboot.error_codes import StatusCode, stringify_status_code
from spsdk.mboot.exceptions import McuBootCommandError
from spsdk.mboot.properties import PropertyTag

from gangd.sim.flashloader import AVAILABLE_COMMANDS

from .flow import RT1020_FLASHLOADER_PID, RT1020_ROM_PID, configure_flexspi, load_flashloader, open_mboot

PORT = "1-1.3"
IMAGE_ADDRESS = 0x6000_0000
IMAGE_SIZE = 45056


def test_whole_flow_with_spsdk_clients(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards())
    image = os.urandom(IMAGE_SIZE)
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        assert mboot.get_property(PropertyTag.CURRENT_VERSION) == [0x4B010600]
        assert mboot.get_property(PropertyTag.AVAILABLE_COMMANDS) == [AVAILABLE_COMMANDS]
        assert mboot.get_property(PropertyTag.MAX_PACKET_SIZE) == [1012]  # the RT10xx HS flashloader
        low, high = mboot.get_property(PropertyTag.UNIQUE_DEVICE_IDENT)
        assert (high << 32 | low) == board.uuid
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(IMAGE_ADDRESS, IMAGE_SIZE, 0)
        assert mboot.write_memory(IMAGE_ADDRESS, image)
        assert mboot.read_memory(IMAGE_ADDRESS, IMAGE_SIZE) == image
        assert mboot.efuse_read_once(0x18) == 0
        assert mboot.efuse_program_once(0x18, 0xA5A5_0001)
        assert mboot.efuse_read_once(0x18) == 0xA5A5_0001
        assert mboot.reset(reopen=False)
    # The board leaves and comes back as the ROM on the same port, under a new device node.
    events.next(PORT, "remove", pid=RT1020_FLASHLOADER_PID)
    back = events.next(PORT, "add", pid=RT1020_ROM_PID)
    assert back.devnode != devnode
    assert board.flash_image(IMAGE_ADDRESS, IMAGE_SIZE) == image
    assert board.otp.read(0x18) == 0xA5A5_0001
    names = [rec.command for rec in board.commands() if rec.stage == "flashloader"]
    assert names[-1] == "reset" and "flash-erase-region" in names and "write-memory" in names


def test_the_users_erase_failure_is_reported_exactly(hub, events, boards, flashloader_image):
    hub.plug(PORT, boards(faults=("status:cmd=flash-erase-region,code=20106",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    with open_mboot(devnode) as mboot:
        configure_flexspi(mboot)
        with pytest.raises(McuBootCommandError) as failure:
            mboot.flash_erase_region(IMAGE_ADDRESS, IMAGE_SIZE, 0)
    assert failure.value.error_value == 20106
    # What blhost prints for the status: the line from the user's log.
    assert stringify_status_code(failure.value.error_value) == "20106 (0x4e8a) FlexSPINOR: Command Failure."


def test_scripted_failures_hit_only_the_named_occurrences(hub, events, boards, flashloader_image):
    board = hub.plug(PORT, boards(faults=("status:cmd=flash-erase-region,code=20106,nth=1+2",)))
    devnode = load_flashloader(events, PORT, *flashloader_image)
    outcomes = []
    with open_mboot(devnode) as mboot:
        configure_flexspi(mboot)
        for _ in range(4):
            try:
                outcomes.append(mboot.flash_erase_region(IMAGE_ADDRESS, 4096, 0))
            except McuBootCommandError as exc:
                outcomes.append(exc.error_value)
    assert outcomes == [20106, 20106, True, True]
    assert [r.status for r in board.commands("flash-erase-region")] == [20106, 20106, 0, 0]


class TestMisuseGetsTheRealStatus:
    @pytest.fixture
    def mboot(self, hub, events, boards, flashloader_image):
        self.board = hub.plug(PORT, boards())
        devnode = load_flashloader(events, PORT, *flashloader_image)
        with open_mboot(devnode) as client:
            yield client

    def status_of(self, call, *args) -> int:
        with pytest.raises(McuBootCommandError) as failure:
            call(*args)
        return failure.value.error_value

    def test_erase_before_configure_memory(self, mboot):
        assert self.status_of(mboot.flash_erase_region, IMAGE_ADDRESS, 4096, 0) == StatusCode.MEMORY_NOT_CONFIGURED

    def test_misaligned_erase_succeeds_and_erases_whole_sectors(self, mboot):
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(IMAGE_ADDRESS, 0x3000, 0)
        assert mboot.write_memory(IMAGE_ADDRESS, b"\x5a" * 0x3000)
        # 0x100 bytes into sector 1, 1000 bytes long: the driver widens it to the whole sector 1.
        assert mboot.flash_erase_region(IMAGE_ADDRESS + 0x1100, 1000, 0)
        assert self.board.flash_image(IMAGE_ADDRESS, 0x1000) == b"\x5a" * 0x1000
        assert self.board.flash_image(IMAGE_ADDRESS + 0x1000, 0x1000) == b"\xff" * 0x1000
        assert self.board.flash_image(IMAGE_ADDRESS + 0x2000, 0x1000) == b"\x5a" * 0x1000

    def test_write_over_unerased_flash_is_refused(self, mboot):
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(IMAGE_ADDRESS, 4096, 0)
        first = bytes([0xF0, 0x3C, 0xFF, 0x00]) * 64
        assert mboot.write_memory(IMAGE_ADDRESS, first)
        # The real flashloader never programs a page twice (cumulative write check).
        assert self.status_of(mboot.write_memory, IMAGE_ADDRESS, b"\x0f" * 256) == StatusCode.MEMORY_CUMULATIVE_WRITE
        assert self.board.flash_image(IMAGE_ADDRESS, 256) == first
        # Erasing brings every bit back to 1, and the page takes a write again.
        assert mboot.flash_erase_region(IMAGE_ADDRESS, 4096, 0)
        assert mboot.read_memory(IMAGE_ADDRESS, 16) == b"\xff" * 16
        assert mboot.write_memory(IMAGE_ADDRESS, b"\x0f" * 256)

    def test_a_new_write_must_start_on_a_page(self, mboot):
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(IMAGE_ADDRESS, 4096, 0)
        status = self.status_of(mboot.write_memory, IMAGE_ADDRESS + 0x10, b"\x11" * 16)
        assert status == StatusCode.FLEXSPINOR_WRITE_ALIGNMENT_ERROR
        assert self.board.flash_image(IMAGE_ADDRESS, 4096) == b"\xff" * 4096

    def test_a_partial_page_is_padded_and_programmed_at_the_end_of_the_command(self, mboot):
        configure_flexspi(mboot)
        assert mboot.flash_erase_region(IMAGE_ADDRESS, 4096, 0)
        assert mboot.write_memory(IMAGE_ADDRESS, b"\x11" * 100)
        # The rest of that page was programmed with 0xFF: a second write into it is cumulative.
        assert self.status_of(mboot.write_memory, IMAGE_ADDRESS, b"\x22" * 4) == StatusCode.MEMORY_CUMULATIVE_WRITE
        assert mboot.write_memory(IMAGE_ADDRESS + 0x100, b"\x22" * 4)
        assert self.board.flash_image(IMAGE_ADDRESS + 0x100, 4) == b"\x22" * 4

    def test_verify_writes_property_reports_and_changes(self, mboot):
        assert mboot.get_property(PropertyTag.VERIFY_WRITES) == [1]
        assert mboot.set_property(PropertyTag.VERIFY_WRITES, 0)
        assert mboot.get_property(PropertyTag.VERIFY_WRITES) == [0]

    @pytest.mark.parametrize("address", [0x1000_0000, 0x7000_0000, 0xF000_0000])
    def test_read_and_write_outside_every_region(self, mboot, address):
        configure_flexspi(mboot)
        assert self.status_of(mboot.read_memory, address, 16) == StatusCode.MEMORY_RANGE_INVALID
        assert self.status_of(mboot.write_memory, address, b"\0" * 16) == StatusCode.MEMORY_RANGE_INVALID

    def test_beyond_the_nor_chip_inside_the_flexspi_window(self, mboot):
        configure_flexspi(mboot)
        beyond = IMAGE_ADDRESS + self.board.spec.nor_size
        assert self.status_of(mboot.flash_erase_region, beyond, 4096, 0) == StatusCode.MEMORY_RANGE_INVALID

    def test_write_over_the_running_flashloader(self, mboot):
        assert self.status_of(mboot.write_memory, 0x2000_0400, b"\0" * 16) == StatusCode.MEMORY_RANGE_INVALID

    def test_unknown_command(self, mboot):
        # Tag 0x13 (generate-key-blob) is not implemented by this flashloader.
        assert self.status_of(mboot.generate_key_blob, b"\0" * 16) == StatusCode.UNKNOWN_COMMAND

    def test_bad_configure_option_tag(self, mboot):
        assert mboot.fill_memory(0x2000, 4, 0x1000_0007)
        assert self.status_of(mboot.configure_memory, 0x2000, 9) == StatusCode.INVALID_ARGUMENT
        # ... and the memory stays unconfigured.
        assert self.status_of(mboot.flash_erase_region, IMAGE_ADDRESS, 4096, 0) == StatusCode.MEMORY_NOT_CONFIGURED

    @pytest.mark.parametrize("option", [0xC0010007, 0xC0001007, 0xC0200007])  # query pads, cmd pads, type
    def test_options_outside_the_sfdp_path_are_refused(self, mboot, option):
        assert mboot.fill_memory(0x2000, 4, option)
        assert self.status_of(mboot.configure_memory, 0x2000, 9) == StatusCode.INVALID_ARGUMENT

    def test_fuses_only_set_bits_and_locked_words_refuse(self, mboot):
        assert mboot.efuse_program_once(0x28, 0x0000_00F0)
        assert mboot.efuse_program_once(0x28, 0x0000_000F)
        assert mboot.efuse_read_once(0x28) == 0xFF
        assert mboot.efuse_program_once(0x29 | 1 << 24, 0x1)  # burn and lock
        assert self.status_of(mboot.efuse_program_once, 0x29, 0x2) == StatusCode.OCOTP_PROGRAM_FAILURE
        assert mboot.efuse_read_once(0x29) == 0x1

    def test_fuse_index_out_of_range(self, mboot):
        assert self.status_of(mboot.efuse_read_once, 500) == StatusCode.OCOTP_READ_FAILURE

    def test_unique_id_is_also_in_the_fuses(self, mboot):
        low, high = mboot.get_property(PropertyTag.UNIQUE_DEVICE_IDENT)
        assert mboot.efuse_read_once(1) == high and mboot.efuse_read_once(2) == low

    def test_memory_attributes_after_configure(self, mboot):
        configure_flexspi(mboot)
        values = mboot.get_property(PropertyTag.EXTERNAL_MEMORY_ATTRIBUTES, index=9)
        assert values[1] == IMAGE_ADDRESS and values[2] * 1024 == self.board.spec.nor_size
