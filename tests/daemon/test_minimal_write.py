"""The planned minimal write: a blank check first, no erase for blank sectors, no write for 0xFF
pages, no hold after the reset; verification still reads every byte, so a wrong blank check is
caught and the group runs again, whole."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from gangd.config.recipe import Image
from gangd.core.port import stage_of
from gangd.engine.plan import PAGE_SIZE, SECTOR_SIZE, page_runs
from gangd.sim import BoardFactory, TimingModel
from gangd.sim.board import SimBoard

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
    reads = board.commands("read-memory")
    assert [(r.args[0], r.args[1]) for r in reads] == [(BASE, len(image))] * 2  # blank check, verify
    assert board.flash_image(BASE, len(image)) == image


async def test_a_board_holding_an_old_image_is_erased_where_needed(line, recipe, rt1020):
    old = {0: b"\x5a" * (2 * SECTOR_SIZE), 7 * SECTOR_SIZE + 100: b"\x00" * 10}
    run, board, result = await program(line, recipe, rt1020, IMAGE, old)
    assert result.result == "success", result.reason
    erases = [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")]
    assert erases == [(0, 2 * SECTOR_SIZE), (7 * SECTOR_SIZE, SECTOR_SIZE)]
    assert board.flash_image(BASE, len(IMAGE)) == IMAGE


@pytest.mark.parametrize("where", ["under-written-pages", "under-0xff-pages"])
async def test_a_wrong_blank_check_is_caught_and_the_group_runs_again_whole(line, recipe, rt1020, where):
    """The blank check reads all 0xFF from a board holding data: the write refuses an unerased page
    (10203) or, where the image has only 0xFF pages, the read-back differs; the group runs again,
    erasing and writing everything."""
    image = with_blank_pages()
    sector = 1 if where == "under-written-pages" else 5
    old = {sector * SECTOR_SIZE: b"\x00" * SECTOR_SIZE}
    run, board, result = await program(line, recipe, rt1020, image, old, faults=["corrupt-readback:nth=1,erased=1"])
    assert result.result == "success", result.reason
    assert board.flash_image(BASE, len(image)) == image
    assert [a.step for a in result.attempts] == (["write"] if sector == 1 else ["verify"])
    assert [(r.args[0] - BASE, r.args[1]) for r in board.commands("flash-erase-region")] == [(0, len(image))]
    assert board.commands("write-memory")[-1].args[:2] == (BASE, len(image))


async def test_the_job_ends_at_the_reset_and_the_rebooted_board_gets_no_second_job(line, recipe, rt1020, store):
    run = await line(1, plug=False)
    first = run.hub.plug(PORT, BoardFactory(rt1020, TimingModel(time_scale=0), seed=9)())
    result = (await run.wait_results(1))[0]
    assert result.result == "success", result.reason
    assert [s.name for s in result.steps][-1] == "reset"  # no wait-reboot holding the port
    port = run.station.ports[PORT]
    with trio.fail_after(10):  # the board is back, rebooted into its ROM, seen by the port
        while port.attached is None or stage_of(rt1020, port.attached) != "rom":
            await trio.sleep(0.005)
    run.hub.unplug(PORT)
    newcomer = BoardFactory(rt1020, TimingModel(time_scale=0), seed=10)()
    newcomer.serial = "NEXT-BOARD"
    run.hub.plug(PORT, newcomer)
    second = (await run.wait_results(2))[1]
    assert (second.serial, second.result) == ("NEXT-BOARD", "success")
    assert [r["serial"] for r in store.jobs()] == [first.serial, "NEXT-BOARD"]
