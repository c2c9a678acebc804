"""The pcapng file format, as far as gangd's traces need it: write and read back.

Reference: the PCAP Next Generation Dump File Format, IETF draft-ietf-opsawg-pcapng (sections 3
"General File Structure", 4.1 Section Header Block, 4.2 Interface Description Block, 4.3 Enhanced
Packet Block, 3.5 Options); link types from the tcpdump.org link-layer header registry
(https://www.tcpdump.org/linktypes.html).

A gangd trace has two interfaces:
- interface 0, LINKTYPE_USB_LINUX_MMAPPED (220): every HID report as one URB completion, preceded
  by the 64-byte usbmon header (Linux Documentation/usb/usbmon.rst, "struct usbmon_packet"),
  which is what Wireshark's USB dissector reads for interrupt transfers;
- interface 1, LINKTYPE_USER0 (147): gangd's own events (udev add/remove with stage and node, the
  steps, power cycles, data-phase digests), one JSON object per packet, with the same event as a
  readable packet comment (opt_comment) that Wireshark shows.

Everything is written little-endian (the SHB's byte-order magic says so); the reader accepts
either byte order for the blocks, and rejects anything that is not a pcapng section.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

LINKTYPE_USB_LINUX_MMAPPED = 220
LINKTYPE_USER0 = 147

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 2, 3, 9
EPB_FLAGS = 2
# epb_flags bits 0-1: direction (01 inbound, 10 outbound), pcapng draft section 4.3.1.
FLAG_INBOUND, FLAG_OUTBOUND = 0x1, 0x2

TSRESOL_NS = 9  # if_tsresol: 10^-9 s units

# usbmon (Documentation/usb/usbmon.rst): 'S' submission, 'C' callback; transfer type 1 interrupt.
USBMON_HEADER = struct.Struct("<QcBBBHccqiiII8siiII")
assert USBMON_HEADER.size == 64
URB_SUBMIT, URB_COMPLETE = b"S", b"C"
XFER_INTERRUPT = 1
USB_DIR_IN = 0x80
# gangd's HID boards use interrupt endpoint 1 both ways (mcu-boot usb_descriptor.c: EP1 IN/OUT).
HID_ENDPOINT = 1


class PcapngError(ValueError):
    """Not a pcapng file, or one cut short: the message says what is wrong and where."""


@dataclass
class Packet:
    interface: int
    ts_ns: int
    data: bytes
    original_length: int
    comments: list[str] = field(default_factory=list)
    flags: int | None = None


@dataclass
class Capture:
    comments: list[str]
    userappl: str | None
    linktypes: list[int]
    packets: list[Packet]


_PAD = [bytes(n) for n in range(4)]  # a value's padding to 32 bits
_OPTION = struct.Struct("<HH")
_END_OF_OPTIONS = _OPTION.pack(OPT_ENDOFOPT, 0)


def _options(items: Iterable[tuple[int, bytes]]) -> bytes:
    out: list[bytes] = []
    for code, value in items:
        out += (_OPTION.pack(code, len(value)), value, _PAD[-len(value) % 4])
    if out:
        out.append(_END_OF_OPTIONS)
    return b"".join(out)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def section_header(comments: Iterable[str], userappl: str, os_name: str | None = None) -> bytes:
    opts = [(OPT_COMMENT, c.encode()) for c in comments] + [(SHB_USERAPPL, userappl.encode())]
    if os_name:
        opts.append((SHB_OS, os_name.encode()))
    # Section length -1: not specified (the draft allows it; readers walk the blocks).
    return _block(SHB_TYPE, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts))


def interface(linktype: int, name: str, description: str, snaplen: int = 0) -> bytes:
    opts = [(IF_NAME, name.encode()), (IF_DESCRIPTION, description.encode()), (IF_TSRESOL, bytes([TSRESOL_NS]))]
    return _block(IDB_TYPE, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts))


_EPB_HEAD = struct.Struct("<7I")  # block type and length, interface, timestamp, captured and original length
_LENGTH = struct.Struct("<I")


def enhanced_packet(
    iface: int, ts_ns: int, data: bytes, original_length: int, comments: Iterable[str] = (), flags: int | None = None
) -> bytes:
    opts = [(OPT_COMMENT, c.encode()) for c in comments]
    if flags is not None:
        opts.append((EPB_FLAGS, struct.pack("<I", flags)))
    options = _options(opts)
    pad = -len(data) % 4
    total = 32 + len(data) + pad + len(options)
    head = _EPB_HEAD.pack(EPB_TYPE, total, iface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), original_length)
    return b"".join((head, data, _PAD[pad], options, _LENGTH.pack(total)))


# One report's EPB up to its data: block type and length, interface, timestamp, captured and
# original length (pcapng 4.3), then the usbmon header, whose fields that stay the same for a
# direction and a device address come packed already (`usbmon_address`, and the setup bytes to
# the end); one call per report (the encoder's hot loop).
_REPORT_HEAD = struct.Struct("<7IQ8sqiiII24s")
_USBMON_ADDRESS = struct.Struct("<cBBBHcc")  # URB type, transfer type, endpoint, devnum, busnum, flags
# setup packet (none), interval (frames: full-speed HID, bInterval 1), start_frame, xfer_flags, ndesc
_USBMON_REST = struct.pack("<8siiII", bytes(8), 1, -1, 0, 0)
assert _REPORT_HEAD.size == 28 + USBMON_HEADER.size


def usbmon_address(inbound: bool, devnum: int, busnum: int) -> bytes:
    """The usbmon header's middle for one direction of a device: URB type (OUT: its submission,
    IN: its completion), interrupt transfer, endpoint, address; no setup packet, data present."""
    return _USBMON_ADDRESS.pack(
        URB_COMPLETE if inbound else URB_SUBMIT,
        XFER_INTERRUPT,
        HID_ENDPOINT | USB_DIR_IN if inbound else HID_ENDPOINT,
        devnum & 0xFF,
        busnum & 0xFFFF,
        b"-",
        b"\0",
    )


def report_options(inbound: bool, comment: str | None = None) -> bytes:
    """A report packet's options: its comment (if any), its direction, the end."""
    opts = [(OPT_COMMENT, comment.encode())] if comment else []
    opts.append((EPB_FLAGS, struct.pack("<I", FLAG_INBOUND if inbound else FLAG_OUTBOUND)))
    return _options(opts)


class ReportTail:
    """What follows a report's data in its packet, by the data's padding (0-3 bytes): the
    padding, `options` (`report_options`) and the block's length, packed in one call."""

    def __init__(self, options: bytes) -> None:
        self.options = options
        self.size = len(options) + 4
        self.by_pad = [struct.Struct(f"<{pad}x{len(options)}sI") for pad in range(4)]


def report_packet(
    urb_id: int, address: bytes, ts_ns: int, length: int, data: bytes | bytearray, tail: ReportTail
) -> tuple[bytes, bytes | bytearray, bytes]:
    """The EPB of one HID report on the usbmon interface (0), in three pieces to write one after
    the other: the headers (`address` from `usbmon_address`), the report's `data` itself
    (`length` on the wire), and its `tail`."""
    captured = len(data)
    pad = -captured % 4
    total = 92 + captured + pad + tail.size
    head = _REPORT_HEAD.pack(
        EPB_TYPE,
        total,
        0,  # interface
        ts_ns >> 32,
        ts_ns & 0xFFFFFFFF,
        64 + captured,
        64 + length,
        urb_id,
        address,
        ts_ns // 1_000_000_000,
        ts_ns // 1000 % 1_000_000,
        0,  # status
        length,
        captured,
        _USBMON_REST,
    )
    return head, data, tail.by_pad[pad].pack(tail.options, total)


# --- reading ----------------------------------------------------------------------------------


def read(data: bytes, name: str) -> Capture:
    """Parse one pcapng section (gangd writes exactly one). `name` is used in error messages."""
    if len(data) < 12:
        raise PcapngError(f"{name}: {len(data)} bytes, too short for a pcapng file")
    if struct.unpack_from("<I", data)[0] != SHB_TYPE:
        raise PcapngError(f"{name}: not a pcapng file (it does not start with a section header block)")
    magic = data[8:12]
    if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
        end = "<"
    elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
        end = ">"
    else:
        raise PcapngError(f"{name}: not a pcapng file (bad byte-order magic)")
    capture = Capture([], None, [], [])
    for block_type, body, at in _blocks(data, end, name):
        if block_type == SHB_TYPE:
            if at != 0:
                raise PcapngError(f"{name}: a second section at byte {at}; a gangd trace has one")
            for code, value in _read_options(body[16:], end, name, at):
                if code == OPT_COMMENT:
                    capture.comments.append(value.decode(errors="replace"))
                elif code == SHB_USERAPPL:
                    capture.userappl = value.decode(errors="replace")
        elif block_type == IDB_TYPE:
            if len(body) < 8:
                raise PcapngError(f"{name}: interface block at byte {at} is too short")
            capture.linktypes.append(struct.unpack_from(end + "H", body)[0])
        elif block_type == EPB_TYPE:
            if len(body) < 20:
                raise PcapngError(f"{name}: packet block at byte {at} is too short")
            iface, high, low, caplen, origlen = struct.unpack_from(end + "5I", body)
            if iface >= len(capture.linktypes):
                raise PcapngError(f"{name}: packet at byte {at} names interface {iface}, which is not described")
            if 20 + caplen > len(body):
                raise PcapngError(f"{name}: packet at byte {at} claims {caplen} bytes but its block is shorter")
            packet = Packet(iface, (high << 32) | low, bytes(body[20 : 20 + caplen]), origlen)
            opts_at = 20 + caplen + (-caplen % 4)
            for code, value in _read_options(body[opts_at:], end, name, at):
                if code == OPT_COMMENT:
                    packet.comments.append(value.decode(errors="replace"))
                elif code == EPB_FLAGS and len(value) == 4:
                    packet.flags = struct.unpack(end + "I", value)[0]
            capture.packets.append(packet)
    return capture


def _blocks(data: bytes, end: str, name: str) -> Iterator[tuple[int, memoryview, int]]:
    view = memoryview(data)
    at = 0
    while at < len(data):
        if len(data) - at < 12:
            raise PcapngError(f"{name}: truncated: {len(data) - at} stray bytes at byte {at}")
        block_type, length = struct.unpack_from(end + "II", data, at)
        if length < 12 or length % 4:
            raise PcapngError(f"{name}: block at byte {at} has an impossible length {length}")
        if at + length > len(data):
            raise PcapngError(
                f"{name}: truncated: the block at byte {at} needs {length} bytes, {len(data) - at} are left"
            )
        (trailer,) = struct.unpack_from(end + "I", data, at + length - 4)
        if trailer != length:
            raise PcapngError(f"{name}: block at byte {at} is damaged (its two lengths differ)")
        yield block_type, view[at + 8 : at + length - 4], at
        at += length


def _read_options(body: memoryview, end: str, name: str, at: int) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(end + "HH", body, pos)
        if code == OPT_ENDOFOPT:
            return
        if pos + 4 + length > len(body):
            raise PcapngError(f"{name}: an option of the block at byte {at} runs past the block")
        yield code, bytes(body[pos + 4 : pos + 4 + length])
        pos += 4 + length + (-length % 4)
