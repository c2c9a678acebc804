"""Images to write, from raw binary, Motorola S-record or Intel HEX files.

S-record and HEX files are checked record by record first, so a truncated file or a bad checksum is
reported with its line number; then bincopy (already a dependency of spsdk) assembles the segments.
"""

from __future__ import annotations

from pathlib import Path

import bincopy

from gangd.config import files

FORMATS = ("bin", "srec", "hex")
_EXTENSIONS = {
    ".bin": "bin",
    ".srec": "srec",
    ".s19": "srec",
    ".s28": "srec",
    ".s37": "srec",
    ".mot": "srec",
    ".hex": "hex",
    ".ihex": "hex",
}


class ImageError(ValueError):
    """A file that is not a valid image; the message names the file and, for text formats, the line."""


def guess_format(path: Path) -> str | None:
    return _EXTENSIONS.get(path.suffix.lower())


def load_segments(path: Path, fmt: str, address: int | None) -> list[tuple[int, bytes]]:
    """[(address, data), ...] in address order. `address` is required for bin, an error for the others."""
    try:
        raw = files.read_bytes(path)
    except files.NotAFile as exc:
        raise ImageError(str(exc)) from None
    if fmt == "bin":
        if address is None:
            raise ImageError(f"{path}: a raw binary needs an address")
        if not raw:
            raise ImageError(f"{path}: the file is empty")
        return [(address, raw)]
    if address is not None:
        raise ImageError(f"{path}: {fmt} files carry their own addresses; remove 'address'")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ImageError(f"{path}: not a text {fmt} file") from None
    unpack = bincopy.unpack_srec if fmt == "srec" else bincopy.unpack_ihex
    records = 0
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            unpack(line)
        except (bincopy.Error, ValueError) as exc:  # bincopy lets ValueError out on non-hex digits
            raise ImageError(f"{path}:{number}: {exc}") from None
        records += 1
    binfile = bincopy.BinFile()
    try:
        (binfile.add_srec if fmt == "srec" else binfile.add_ihex)(text)
    except (bincopy.Error, ValueError) as exc:
        raise ImageError(f"{path}: {exc}") from None
    if fmt == "hex" and not text.rstrip().endswith(":00000001FF"):
        raise ImageError(f"{path}: truncated: no end-of-file record")
    segments = [(seg.minimum_address, bytes(seg.data)) for seg in binfile.segments]
    if not segments:
        raise ImageError(f"{path}: no data records")
    return segments
