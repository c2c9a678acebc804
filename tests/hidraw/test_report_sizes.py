"""The report descriptors are the reference for the simulator's HID reports: every report a board
sends is as long as its descriptor says (plus the report id), on the socket hub as on hidraw."""

from __future__ import annotations

import struct

import pytest

from gangd.io.transport import FdHidDevice
from gangd.sim import SimHub
from gangd.sim.hid_reports import FLASHLOADER_DESCRIPTOR, ROM_DESCRIPTOR, DescriptorError, report_sizes


def test_the_flashloader_descriptor_is_nxps():
    # mcu-boot usb_descriptor.c at high speed: REPORT_SIZE 40 bits x REPORT_COUNT 203 per report,
    # 76 bytes in all (USB_HID_REPORT_DESC_SIZE).
    assert len(FLASHLOADER_DESCRIPTOR) == 76
    assert FLASHLOADER_DESCRIPTOR.count(bytes([0x75, 40, 0x95, 203])) == 4
    assert report_sizes(FLASHLOADER_DESCRIPTOR) == {
        ("output", 1): 1015,
        ("output", 2): 1015,
        ("input", 3): 1015,
        ("input", 4): 1015,
    }


def test_the_rom_descriptor_agrees_with_spsdk():
    from spsdk.sdp.protocol.bulk_protocol import HID_REPORT

    sizes = report_sizes(ROM_DESCRIPTOR)
    for name, (report_id, size, *_) in HID_REPORT.items():
        direction = "output" if name in ("CMD", "DATA") else "input"
        assert sizes[(direction, report_id)] == size, name


def test_report_sizes_walks_long_items_push_and_pop():
    descriptor = bytes(
        [
            0x85,
            0x05,
            0x75,
            0x08,
            0x95,
            0x02,
            0xA4,  # id 5, 8 bits x 2, push
            0x75,
            0x01,
            0x95,
            0x03,
            0x81,
            0x02,  # 3 bits of input
            0xB4,
            0x91,
            0x02,  # pop: 2 bytes of output
            0xFE,
            0x02,
            0x10,
            0xAA,
            0xBB,  # a long item, skipped
            0x96,
            0x00,
            0x01,
            0xB1,
            0x02,  # count 256 (two-byte item): 256 bytes of feature
        ]
    )
    assert report_sizes(descriptor) == {("input", 5): 1, ("output", 5): 2, ("feature", 5): 256}
    with pytest.raises(DescriptorError):
        report_sizes(bytes([0x96, 0x00]))


def raw_reply(devnode: str, report: bytes) -> list[bytes]:
    """Write one report to a simulated board's node; every report it sends back, raw."""
    device = FdHidDevice(devnode, timeout=2000)
    device.open()
    try:
        device.write(report)
        replies = [device.read(2048)]
        while True:
            try:
                replies.append(device.read(2048, timeout=100))
            except Exception:  # no more reports
                return replies
    finally:
        device.dispose()


def test_the_simulators_reports_have_the_descriptors_sizes(boards):
    mboot = report_sizes(FLASHLOADER_DESCRIPTOR)
    sdp = report_sizes(ROM_DESCRIPTOR)
    with SimHub(["1-1.1", "1-1.2"]) as hub:
        hub.plug("1-1.1", boards(stage="flashloader"))
        hub.plug("1-1.2", boards())
        # get-property 1 (CurrentVersion): one command-in report, full size, zero padded
        command = struct.pack("<4BI", 0x07, 0, 0, 1, 1)
        (reply,) = raw_reply(hub.port("1-1.1").devnode, struct.pack("<BBH", 1, 0, len(command)) + command)
        assert reply[0] == 3 and len(reply) == 1 + mboot[("input", 3)] == 1016
        length = struct.unpack_from("<H", reply, 2)[0]
        assert reply[4 + length :] == bytes(len(reply) - 4 - length)
        # SDP error-status: the HAB report then the status in a RET report
        command = struct.pack(">HIB2IB", 0x0505, 0, 0, 0, 0, 0)
        hab, ret = raw_reply(hub.port("1-1.2").devnode, bytes([1]) + command.ljust(1024, b"\0"))
        assert (hab[0], len(hab)) == (3, 1 + sdp[("input", 3)])
        assert (ret[0], len(ret)) == (4, 1 + sdp[("input", 4)])
        assert not hub.errors
