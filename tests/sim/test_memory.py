"""SparseMemory's NOR programming: a program can only clear bits (the result is old AND new),
whether the cells are erased, hold data, or a page mixes both."""

from __future__ import annotations

from gangd.sim.memory import SparseMemory

PAGE = 4096


def test_erased_cells_take_the_data_as_it_is():
    flash = SparseMemory(0xFF)
    data = bytes(range(256)) * 20
    flash.program(100, data)
    assert flash.read(100, len(data)) == data
    assert flash.read(0, 100) == b"\xff" * 100


def test_programming_over_data_clears_bits_only():
    flash = SparseMemory(0xFF)
    flash.program(0, b"\xf0" * 16)
    flash.program(0, b"\x3c" * 16)
    assert flash.read(0, 16) == b"\x30" * 16


def test_a_chunk_partly_programmed_is_anded_where_it_holds_data():
    flash = SparseMemory(0xFF)
    flash.program(PAGE - 8, b"\x0f" * 4)  # 4 cells hold data, the rest of the page is erased
    flash.program(PAGE - 12, b"\xf3" * 12 + b"\x55" * 8)  # across those cells and into the next page
    assert flash.read(PAGE - 12, 20) == b"\xf3" * 4 + b"\x03" * 4 + b"\xf3" * 4 + b"\x55" * 8


def test_ram_is_written_not_programmed():
    ram = SparseMemory(0x00)
    ram.write(0, b"\xf0" * 4)
    ram.write(0, b"\x0f" * 4)
    assert ram.read(0, 4) == b"\x0f" * 4


def test_any_span_reads_back_what_a_flat_copy_holds():
    """Writes, programs and reads at random addresses and lengths, within a page and across
    pages, against a plain bytearray doing the same."""
    import random

    rng = random.Random(1)
    flash, flat = SparseMemory(0xFF), bytearray(b"\xff" * 20 * PAGE)
    for _ in range(300):
        at, data = rng.randrange(16 * PAGE), rng.randbytes(rng.randrange(1, 3 * PAGE))
        if rng.random() < 0.5:
            flash.write(at, data)
            flat[at : at + len(data)] = data
        else:
            flash.program(at, data)
            flat[at : at + len(data)] = bytes(a & b for a, b in zip(flat[at : at + len(data)], data))
        at, length = rng.randrange(16 * PAGE), rng.randrange(0, 3 * PAGE)
        back = flash.read(at, length)
        assert type(back) is bytes and back == flat[at : at + length]
