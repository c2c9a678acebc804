"""The HID report descriptors the simulated boards present over USB, and the report sizes they fix.

A HID device's report descriptor says how long each of its reports is; hosts read it (Linux:
HIDIOCGRDESC on /dev/hidrawN) and hidapi, which NXP's libusbsio is, pads every write to the length
it finds there. So the descriptor is the reference for the simulator's reports: `links.py` pads the
board's input reports to the sizes parsed here, and the emulated hidraw nodes (`hidraw.py`) hand the
same bytes out.
"""

from __future__ import annotations

# Report ids, shared by both stages (mcu-boot `bootloader_hid_report_ids.h`; spsdk
# `sdp/protocol/bulk_protocol.py` HID_REPORT for the ROM).
CMD_OUT, DATA_OUT, CMD_IN, DATA_IN = 1, 2, 3, 4

_USAGE_PAGE_VENDOR = (0x06, 0x00, 0xFF)  # Usage Page (Vendor Defined 0xFF00)
_USAGE_VENDOR_1 = (0x09, 0x01)  # Usage (Vendor 1)
_COLLECTION_APPLICATION = (0xA1, 0x01)
_END_COLLECTION = (0xC0,)
_OUTPUT, _INPUT = 0x91, 0x81  # main items, each followed by 0x02 (Data, Variable, Absolute)


def _count(count: int) -> tuple[int, ...]:
    """A Report Count item, in the short form that holds the number."""
    return (0x95, count) if count < 0x100 else (0x96, count & 0xFF, count >> 8)


def _report(report_id: int, main: int, bits: int, count: int) -> tuple[int, ...]:
    """One report the way NXP's bootloader writes it (mcu-boot `usb_descriptor.c`,
    HID_USAGE_HIDTC_DATA_OUT / _IN): id, usage 1..1, logical 0..255, size, count, main item."""
    return (
        0x85,
        report_id,  # Report ID
        0x19,
        0x01,
        0x29,
        0x01,  # Usage Minimum (1), Usage Maximum (1)
        0x15,
        0x00,
        0x26,
        0xFF,
        0x00,  # Logical Minimum (0), Logical Maximum (255)
        0x75,
        bits,  # Report Size (bits per field)
        *_count(count),  # Report Count (fields)
        main,
        0x02,  # Output / Input (Data, Variable, Absolute)
    )


def _descriptor(*reports: tuple[int, ...]) -> bytes:
    items = [*_USAGE_PAGE_VENDOR, *_USAGE_VENDOR_1, *_COLLECTION_APPLICATION]
    for report in reports:
        items += report
    return bytes(items + list(_END_COLLECTION))


# The flashloader (MCU bootloader) at high speed: NXP mcu-boot SDK 2.11 `src/bm_usb/usb_descriptor.c`
# g_hid_generic_report_descriptor with `usb_descriptor.h`: BL_EXPANDED_USB_HID_PACKET_SIZE 1012 (RT1021)
# + 3 header bytes (alignment byte, length LSB, MSB) = BL_HS_ACTUAL_REPORT_SIZE 1015 bytes after the
# report id, written as REPORT_SIZE 8*5 = 40 bits x REPORT_COUNT 1015/5 = 203 (the multiplier 5 for
# 1012). With the id that is 1016 bytes, the interrupt endpoints' wMaxPacketSize. The firmware sends
# every input report at that full size ("Send the maximum report size since that's what the host
# expects", usb_hid_packet_write: USB_DeviceHidSend(..., sizeof(report))). 76 bytes in all, as its
# USB_HID_REPORT_DESC_SIZE says.
_MBOOT_BITS, _MBOOT_COUNT = 40, 203
FLASHLOADER_DESCRIPTOR = _descriptor(
    _report(CMD_OUT, _OUTPUT, _MBOOT_BITS, _MBOOT_COUNT),
    _report(DATA_OUT, _OUTPUT, _MBOOT_BITS, _MBOOT_COUNT),
    _report(CMD_IN, _INPUT, _MBOOT_BITS, _MBOOT_COUNT),
    _report(DATA_IN, _INPUT, _MBOOT_BITS, _MBOOT_COUNT),
)

# The i.MX RT boot ROM's serial download protocol (SDP). No NXP source for the ROM's descriptor was
# found; this one is built to agree with what the host side sends and expects (spsdk
# `sdp/protocol/bulk_protocol.py` HID_REPORT: CMD id 1 and DATA id 2 of 1024 bytes out, HAB id 3 of
# 4 bytes and RET id 4 of 64 bytes in), in the style of NXP's flashloader descriptor above.
ROM_DESCRIPTOR = _descriptor(
    _report(CMD_OUT, _OUTPUT, 8, 1024),
    _report(DATA_OUT, _OUTPUT, 8, 1024),
    _report(CMD_IN, _INPUT, 8, 4),
    _report(DATA_IN, _INPUT, 8, 64),
)


class DescriptorError(ValueError):
    """A report descriptor that cannot be walked item by item."""


def report_sizes(descriptor: bytes) -> dict[tuple[str, int], int]:
    """Bytes per report after its report id, keyed by ("input" | "output" | "feature", report id).

    Walks the descriptor's items (USB HID 1.11, 6.2.2): the global items Report ID, Report Size,
    Report Count, Push and Pop set the state; each Input, Output or Feature main item adds
    size x count bits to the current report. Long items are skipped.
    """
    bits: dict[tuple[str, int], int] = {}
    state = {"id": 0, "size": 0, "count": 0}
    stack: list[dict[str, int]] = []
    kinds = {0x8: "input", 0x9: "output", 0xB: "feature"}
    i = 0
    while i < len(descriptor):
        prefix = descriptor[i]
        if prefix == 0xFE:  # long item: bDataSize, bLongItemTag, data
            if i + 1 >= len(descriptor):
                raise DescriptorError(f"long item at {i} is cut short")
            i += 3 + descriptor[i + 1]
            continue
        length = (0, 1, 2, 4)[prefix & 0x3]
        if i + 1 + length > len(descriptor):
            raise DescriptorError(f"item 0x{prefix:02x} at {i} is cut short")
        value = int.from_bytes(descriptor[i + 1 : i + 1 + length], "little")
        kind, tag = (prefix >> 2) & 0x3, prefix >> 4
        if kind == 1:  # global
            if tag == 0x7:
                state["size"] = value
            elif tag == 0x8:
                state["id"] = value
            elif tag == 0x9:
                state["count"] = value
            elif tag == 0xA:
                stack.append(dict(state))
            elif tag == 0xB and stack:
                state = stack.pop()
        elif kind == 0 and tag in kinds:
            key = (kinds[tag], state["id"])
            bits[key] = bits.get(key, 0) + state["size"] * state["count"]
        i += 1 + length
    return {key: (total + 7) // 8 for key, total in bits.items()}


__all__ = [
    "CMD_IN",
    "CMD_OUT",
    "DATA_IN",
    "DATA_OUT",
    "FLASHLOADER_DESCRIPTOR",
    "ROM_DESCRIPTOR",
    "DescriptorError",
    "report_sizes",
]
