"""Boot images the simulated ROM accepts: a HAB v4 image vector table (IVT) and its boot data.

The i.MX RT ROM jumps to an IVT, not to code: `jump-address` names the IVT, whose `self` field
must equal that address, whose boot data names where the image lies and whose entry point must
lie inside it. That is what the simulator checks, with the same code as `gangd check-config`
(`gangd/config/bootimage.py`); HAB's authentication of a signed image (its CSF, the SRK table
against the fuses, a pretend signature) is in `hab.py`.

`build_flashloader_image` makes such an image for demos and tests, laid out the way NXP's
`ivt_flashloader.bin` is: loaded at the start of RAM with the IVT 0x400 bytes in.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from gangd.config.bootimage import BOOT_DATA_SIZE, IVT_SIZE, IVT_TAG, Ivt, parse_ivt

DEFAULT_IVT_OFFSET = 0x400
__all__ = [
    "BOOT_DATA_SIZE",
    "DEFAULT_IVT_OFFSET",
    "IVT_SIZE",
    "BootImage",
    "Ivt",
    "build_flashloader_image",
    "parse_ivt",
]


@dataclass(frozen=True)
class BootImage:
    start: int
    length: int
    ivt: Ivt


def build_flashloader_image(
    load_address: int = 0x2000_0000,
    code_size: int = 0x8000,
    ivt_offset: int = DEFAULT_IVT_OFFSET,
    signed: bool = False,
    seed: bytes = b"gangd-sim-flashloader",
) -> tuple[bytes, int]:
    """An unsigned flashloader image and the address to jump to. `signed` only adds a CSF pointer
    and a CSF header tag: no SRK table, so HAB (hab.py) does not authenticate it; tests sign with
    spsdk instead (tests/hab.py).

    The "code" is deterministic filler so images are reproducible and hashable.
    """
    ivt_address = load_address + ivt_offset
    boot_data_address = ivt_address + IVT_SIZE
    code_offset = ivt_offset + IVT_SIZE + BOOT_DATA_SIZE + 4
    total = code_offset + code_size
    csf_address = load_address + total if signed else 0
    if signed:
        total += 0x100
    entry = load_address + code_offset | 1  # Thumb bit, as a Cortex-M entry point has
    ivt = struct.pack(">BHB", IVT_TAG, IVT_SIZE, 0x41) + struct.pack(
        "<7I", entry, 0, 0, boot_data_address, ivt_address, csf_address, 0
    )
    boot_data = struct.pack("<3I", load_address, total, 0)
    filler = bytearray()
    counter = 0
    while len(filler) < code_size:
        filler += hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        counter += 1
    image = bytearray(total)
    image[ivt_offset : ivt_offset + IVT_SIZE] = ivt
    image[ivt_offset + IVT_SIZE : ivt_offset + IVT_SIZE + BOOT_DATA_SIZE] = boot_data
    image[code_offset : code_offset + code_size] = filler[:code_size]
    if signed:
        image[total - 0x100 : total - 0x100 + 4] = b"\xd4\x00\x50\x43"  # CSF header tag
    return bytes(image), ivt_address
