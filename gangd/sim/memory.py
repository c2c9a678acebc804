"""Sparse byte stores for a simulated board: RAM, serial NOR flash and OTP fuse words.

Pages are allocated on first write, so a board with 256 MiB of FlexSPI address window and a few
hundred KiB of RAM costs memory only for what a recipe touches: 64 boards fit in a test process.
"""

from __future__ import annotations

from gangd.sim.timing import SECTOR_SIZE

_PAGE = SECTOR_SIZE


class SparseMemory:
    """Bytes at absolute addresses, reading `blank` where nothing was written."""

    def __init__(self, blank: int) -> None:
        self._blank = blank
        self._blank_page = bytes([blank]) * _PAGE
        self._pages: dict[int, bytearray] = {}

    def _page(self, number: int) -> bytearray:
        page = self._pages.get(number)
        if page is None:
            page = bytearray([self._blank]) * _PAGE
            self._pages[number] = page
        return page

    def read(self, address: int, length: int) -> bytes:
        if length <= 0:
            return b""
        first, start = divmod(address, _PAGE)
        last = (address + length - 1) // _PAGE
        pages, blank = self._pages, self._blank_page
        if first == last:
            return bytes(memoryview(pages.get(first, blank))[start : start + length])
        # The pages as they are, the two ends cut by views: one copy of the whole read, the join.
        parts: list[bytes | bytearray | memoryview] = [pages.get(n, blank) for n in range(first, last + 1)]
        if start:
            parts[0] = memoryview(parts[0])[start:]
        end = address + length - last * _PAGE
        if end < _PAGE:
            parts[-1] = memoryview(parts[-1])[:end]
        return b"".join(parts)

    def write(self, address: int, data: bytes) -> None:
        self._apply(address, data, program=False)

    def program(self, address: int, data: bytes) -> None:
        """NOR programming: a write can only clear bits, so the result is old AND new."""
        self._apply(address, data, program=True)

    def _apply(self, address: int, data: bytes, program: bool) -> None:
        view = memoryview(data)
        # Cells still at 0xFF take the new bits as they are (x AND 0xFF = x): the AND below is for
        # cells that hold something, and the common case (an erased flash) needs only the copy.
        erased = self._blank == 0xFF
        pages = self._pages
        while view:
            number, offset = divmod(address, _PAGE)
            take = min(len(view), _PAGE - offset)
            if take == _PAGE and (erased or not program) and number not in pages:
                pages[number] = bytearray(view[:take])  # a whole blank page takes the data as it is
                address += take
                view = view[take:]
                continue
            page = self._page(number)
            if program and not (erased and page.count(0xFF, offset, offset + take) == take):
                # Whole-chunk integer AND: byte by byte would cost ~0.1 s per MiB in Python.
                old = int.from_bytes(page[offset : offset + take], "little")
                new = int.from_bytes(view[:take], "little")
                page[offset : offset + take] = (old & new).to_bytes(take, "little")
            else:
                page[offset : offset + take] = view[:take]
            address += take
            view = view[take:]

    def erase(self, address: int, length: int) -> None:
        """Return whole pages to blank; address and length are page aligned by the caller."""
        for number in range(address // _PAGE, (address + length) // _PAGE):
            self._pages.pop(number, None)

    def clear(self) -> None:
        self._pages.clear()


class OtpFuses:
    """One-time-programmable 32-bit words: bits can only be set; a locked word takes no writes."""

    def __init__(self, words: int) -> None:
        self.words = words
        self._values = [0] * words
        self._locked = [False] * words

    def valid(self, index: int) -> bool:
        return 0 <= index < self.words

    def read(self, index: int) -> int:
        return self._values[index]

    def is_locked(self, index: int) -> bool:
        return self._locked[index]

    def burn(self, index: int, value: int, lock: bool = False) -> None:
        self._values[index] |= value & 0xFFFFFFFF
        if lock:
            self._locked[index] = True

    def preset(self, index: int, value: int, locked: bool = False) -> None:
        """Factory state or a pre-burned board: set the word as if burned before we met it."""
        self._values[index] = value & 0xFFFFFFFF
        self._locked[index] = locked
