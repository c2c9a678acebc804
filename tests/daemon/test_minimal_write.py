"""The planned minimal write: a blank check first, no erase for blank sectors, no write for 0xFF
pages, no hold after the reset; verification still reads every byte, so a wrong blank check is
caught and the group runs again, whole.

The blank check samples the head of the range and reads whole only a range whose head holds an old
image; otherwise it reads only what the write leaves alone, and the flashloader's refusal of an
unerased page (10203) is the check for the pages the write programs."""

from __future__ import annotations

import dataclasses

import pytest

from gangd.config.family import stage_of
from gangd.config.geometry import PAGE_SIZE, SECTOR_SIZE
from gangd.config.recipe import Image
from gangd.engine.board_ops import SAMPLE_SIZE
from gangd.engine.plan import page_runs
from gangd.sim import BoardFactory, TimingModel
from gangd.sim.board import SimBoard

from ..support import until
from .conftest import IMAGE

pytestmark = pytest.mark.trio

BASE = 0x6000_0000
PORT = "1-1.1"


def with_blank_pages() -> bytes:
    """The test image with two 0xFF pages inside sector 0 and sector 5 all 0xFF."""
    image = bytearray(IMAGE)
    image[2 * PAGE_SIZE : 4 * PAGE_SIZE] = b"\xff" * (2 * PAGE_SIZE)
    image[5 * SECTOR_SIZE : 6 * SECTOR_SIZE] = b"\xff" * SECTOR_SIZE
    return bytes(image)


async def program(line, recipe, rt1020, image: bytes, old: dict[int, bytes] | None = None, faults=()):
    """One board, its flash holding `old` (offset -> bytes) when it arrives, programmed with `image`."""
    chosen = dataclasses.replace(recipe, images=(Image(BASE, image),))
    run = await line(1, recipe_override=chosen, plug=False)
    spec = BoardFactory(rt1020, TimingModel(time_scale=0), seed=7)()
    spec.faults = tuple(faults)
    board = SimBoard(spec)
    for offset, data in (old or {}).items():
        board.flash.program(offset, data)
    run.hub.plug(PORT, board)
    result = (await run.wait_results(1))[0]
    return run, board, result


async def test_a_blank_board_gets_no_erase_and_no_write_of_0xff_pages(line, recipe, rt1020):
    image = with_blank_pages()
    run, board, result = await program(line, recipe, rt1020, image)
    assert result.result == "success", result.reason
    assert board.commands("flash-erase-region") == []
    writes = [(r.args[0] - BASE, r.args[1]) for r in board.commands("write-memory") if r.args[0] >= BASE]
    assert writes == page_runs(Image(BASE, image))
    assert sum(length for _, length in writes) == len(image) - 2 * PAGE_SIZE - SECTOR_SIZE
    assert all(offset % PAGE_SIZE == 0 for offset, _ in writes)
    reads = [(r.args[0] - BASE, r.args[1]) for r in board.commands("read-memory")]
    # The blank check: the head sample, then only the pages the write leaves alone; then the verify.
    assert reads == [(0, SAMPLE_SIZE), (2 * PAGE_SIZE, 2 * PAGE_SIZE), (5 * SECTOR_SIZE, SECTOR_SIZE), (0, len(image))]
    assert board.flash_image(BASE, len(image)) == image


async def test_a_board_holding_an_old_image_is_erased_where_needed(line, recipe, rt1020):
    old = {0: b"\x5a" * (2 * SECTOR_SIZE), 7 * SECTOR_SIZE + 100: b"\x00" * 10}
    run, board, result = await program(line, recipe, rt1020, IMAGE, old)
    assert result.result == "success", result.reason
    erases = [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")]
    assert erases == [(0, 2 * SECTOR_SIZE), (7 * SECTOR_SIZE, SECTOR_SIZE)]
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE


async def test_old_data_under_written_pages_is_refused_by_the_flashloader_and_erased(line, recipe, rt1020):
    """The head is blank, so the range is presumed blank; the write meets old data in sector 1 and
    the flashloader refuses the unerased page (10203). Within the write step the range is read, only
    sector 1 erased and the image written again: no failed attempt, no retry of the group."""
    image = with_blank_pages()
    run, board, result = await program(line, recipe, rt1020, image, {SECTOR_SIZE + 512: b"\x00" * 100})
    assert result.result == "success", result.reason
    assert result.attempts == []
    # Sector 1 for its old data, sector 0 for the pages this write programmed before the refusal;
    # nothing past the refused page was programmed, so nothing past sector 1 needs an erase.
    erases = [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")]
    assert erases == [(0, 2 * SECTOR_SIZE)]
    refused = [r for r in board.commands("write-memory") if r.status == 10203]
    assert len(refused) == 1
    reads = [(r.args[0] - BASE, r.args[1]) for r in board.commands("read-memory")]
    assert (0, len(image)) in reads[:-1]  # read whole once refused, before the verify
    assert board.flash_image(BASE, len(image)) == image


async def test_old_data_under_0xff_pages_is_found_by_the_blank_check(line, recipe, rt1020):
    """The image's 0xFF pages are never written, so the flashloader cannot see what they hold:
    the blank check reads them, and the sector holding old data is erased."""
    image = with_blank_pages()
    run, board, result = await program(line, recipe, rt1020, image, {5 * SECTOR_SIZE + 8: b"\x00" * 8})
    assert result.result == "success", result.reason
    assert [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")] == [
        (5 * SECTOR_SIZE, SECTOR_SIZE)
    ]
    assert all(r.status != 10203 for r in board.commands("write-memory"))
    assert board.flash_image(BASE, len(image)) == image


async def test_a_wrong_blank_check_is_caught_and_the_group_runs_again_whole(line, recipe, rt1020):
    """The blank check's read of the image's 0xFF pages in sector 5 reads all 0xFF from a board
    holding data there (the third read-memory: after the head sample and pages 2-3); the read-back
    differs, and the group runs again, erasing and writing everything."""
    image = with_blank_pages()
    old = {5 * SECTOR_SIZE: b"\x00" * SECTOR_SIZE}
    run, board, result = await program(line, recipe, rt1020, image, old, faults=["corrupt-readback:nth=3,erased=1"])
    assert result.result == "success", result.reason
    assert board.flash_image(BASE, len(image)) == image
    assert [a.step for a in result.attempts] == ["verify"]
    assert [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")] == [(0, len(image))]
    assert board.commands("write-memory")[-1].args[:2] == (BASE, len(image))


async def test_the_blank_check_samples_each_erase_block_and_erases_the_ones_holding_data(line, recipe, rt1020):
    """Three 64 KiB blocks: an old image fills block 0 and starts block 2. Each block's head is
    sampled; blocks 0 and 2 are erased whole without being read, block 1 is presumed blank (the
    flashloader checks every page the write programs there), and nothing is read whole."""
    block = 64 * 1024
    image = bytes(range(256)) * (3 * block // 256)
    old = {0: b"\x00" * block, 2 * block: b"\x00" * SECTOR_SIZE}
    run, board, result = await program(line, recipe, rt1020, image, old)
    assert result.result == "success", result.reason
    assert result.attempts == []
    reads = [(r.args[0] - BASE, r.args[1]) for r in board.commands("read-memory")]
    assert reads == [(0, SAMPLE_SIZE), (block, SAMPLE_SIZE), (2 * block, SAMPLE_SIZE), (0, len(image))]
    erases = [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")]
    assert erases == [(0, block), (2 * block, block)]
    assert all(r.status != 10203 for r in board.commands("write-memory"))
    assert board.flash_image(BASE, len(image)) == image


async def test_the_job_ends_at_the_reset_and_the_rebooted_board_gets_no_second_job(line, recipe, rt1020, store):
    run = await line(1, plug=False)
    first = run.hub.plug(PORT, BoardFactory(rt1020, TimingModel(time_scale=0), seed=9)())
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    assert [s.name for s in result.steps][-1] == "reset"  # no wait-reboot holding the port
    port = run.station.ports[PORT]
    await until(  # the board is back, rebooted into its ROM, seen by the port
        run.station.changes,
        lambda: port.attached is not None and stage_of(rt1020, port.attached) == "rom",
        "the rebooted board back in its ROM on the port",
    )
    run.hub.unplug(PORT)
    newcomer = BoardFactory(rt1020, TimingModel(time_scale=0), seed=10)()
    newcomer.serial = "NEXT-BOARD"
    run.hub.plug(PORT, newcomer)
    second = (await run.wait_results(2))[1]
    assert (second.serial, second.result) == ("NEXT-BOARD", "success")
    assert [r["serial"] for r in store.jobs()] == [first.serial, "NEXT-BOARD"]
