"""i.MX RT boot images: the image vector table (IVT) and boot data the ROM jumps through.

The i.MX RT ROM does not jump to code: SDP's `jump-address` names an IVT (HAB v4), whose header is
the tag 0xD1, a big-endian length of 0x20 and a version byte, followed by seven little-endian
words: entry point, reserved, DCD, boot data, self, CSF, reserved. The boot data are three words:
the image's start, its length and a plugin flag. The layout is spsdk's `SegIVT` and `SegBDT`
(`spsdk/image/hab/segments/seg_ivt.py`, `seg_bdt.py`; the tag is `SegmentTag.IVT` in
`spsdk/image/hab/hab_header.py`), which build and parse the same table as the reference manual's
"Image Vector Table" section.

One check serves both sides so they cannot drift apart: `gangd check-config` runs it on the
flashloader file as it will lie in RAM, and the simulated ROM (`gangd/sim/rom.py`) runs it on its
RAM when asked to jump. A flashloader that fails it would be refused by the ROM (HAB failure), and
every board would then wait for a flashloader that never enumerates.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

IVT_TAG = 0xD1
IVT_SIZE = 0x20
# spsdk's SegIVT.version accepts 0x40..0x4E (HAB 4.x); NXP's flashloaders carry 0x40 or 0x41.
# Our choice: accept what spsdk accepts, so check-config never refuses an image spsdk would build.
IVT_VERSIONS = range(0x40, 0x4F)
BOOT_DATA_SIZE = 12
THUMB = 1  # bit 0 of a Cortex-M entry point: the Thumb state, not part of the address


@dataclass(frozen=True)
class Ivt:
    entry: int
    dcd: int
    boot_data: int
    self_address: int
    csf: int


def parse_ivt(raw: bytes) -> Ivt | None:
    """The IVT in `raw` (at least IVT_SIZE bytes), or None when the header is not an IVT's."""
    if len(raw) < IVT_SIZE:
        return None
    tag, length, version = struct.unpack_from(">BHB", raw)
    if tag != IVT_TAG or length != IVT_SIZE or version not in IVT_VERSIONS:
        return None
    entry, _, dcd, boot_data, self_address, csf, _ = struct.unpack_from("<7I", raw, 4)
    return Ivt(entry, dcd, boot_data, self_address, csf)


def boot_image_problem(read: Callable[[int, int], bytes | None], jump_address: int, where: str) -> str:
    """Why the ROM would refuse to jump to `jump_address`, or "" when the image is good.

    `read(address, length)` gives the bytes the ROM would find there, or None where there are none
    (outside RAM for the ROM, outside the file for check-config); `where` names that place in the
    message ("RAM", "the loaded flashloader")."""
    raw = read(jump_address, IVT_SIZE)
    if raw is None:
        return f"the IVT at 0x{jump_address:08x} would lie outside {where}"
    ivt = parse_ivt(raw)
    if ivt is None:
        return (
            f"no image vector table at 0x{jump_address:08x} (found {raw[:4].hex()}, expected tag d1, "
            f"length 0020, version 40-4e): not an i.MX RT boot image, or the wrong jump_address"
        )
    if ivt.self_address != jump_address:
        return f"the IVT's self pointer is 0x{ivt.self_address:08x}, not the jump address 0x{jump_address:08x}"
    boot_data = read(ivt.boot_data, BOOT_DATA_SIZE)
    if boot_data is None:
        return f"the IVT's boot data pointer 0x{ivt.boot_data:08x} lies outside {where}"
    start, length, _ = struct.unpack("<3I", boot_data)
    entry = ivt.entry & ~THUMB
    if not start <= entry < start + length:
        return (
            f"the IVT's entry point 0x{ivt.entry:08x} is outside the image its boot data describe "
            f"(0x{start:08x}..+{length})"
        )
    return ""


def file_reader(data: bytes, load_address: int) -> Callable[[int, int], bytes | None]:
    """`read` for `boot_image_problem` over a file loaded at `load_address`."""

    def read(address: int, length: int) -> bytes | None:
        offset = address - load_address
        if offset < 0 or offset + length > len(data):
            return None
        return data[offset : offset + length]

    return read


def flashloader_problem(data: bytes, load_address: int, jump_address: int) -> str:
    """What the ROM would refuse in a flashloader file loaded at `load_address` and jumped to at
    `jump_address`, or "". Beyond the ROM's own check, the entry point must lie in the file's
    bytes: code the file does not carry is whatever RAM held before."""
    problem = boot_image_problem(file_reader(data, load_address), jump_address, "the loaded flashloader")
    if problem:
        return problem
    ivt = parse_ivt(data[jump_address - load_address :])
    assert ivt is not None  # checked just above
    entry = ivt.entry & ~THUMB
    if not load_address <= entry < load_address + len(data):
        return (
            f"the IVT's entry point 0x{ivt.entry:08x} is outside the loaded flashloader "
            f"(0x{load_address:08x}..+{len(data)})"
        )
    return ""
