"""SIGTERM and SIGHUP as systemd sends them, to gangd's serve loop in this process, on simulated
boards; asserted on the records and on the simulator's command log."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from pathlib import Path

import pytest
import trio

from gangd.config.loader import load_config
from gangd.config.recipe import FusePlan, FuseWord
from gangd.service.daemon import serve
from gangd.service.records import RecordStore
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.images import build_flashloader_image
from gangd.sim.source import SimHubSource
from gangd.station.station import Station

from ..support import until
from ..support.burn import MidBurn

EXAMPLE = Path(__file__).parents[2] / "config" / "rt1020.toml"
SLOW = TimingModel(time_scale=1, reenumeration_s=0.05)


@pytest.fixture
def store(tmp_path):
    records = RecordStore(tmp_path / "records.sqlite")
    yield records
    records.close()


async def wait_step(station: Station, port: str, step: str) -> None:
    def at_step() -> bool:
        return station.ports.get(port) is not None and station.ports[port].step == step

    await until(station.changes, at_step, f"{port} at step {step}", timeout=20)


async def test_sigterm_during_a_write_ends_at_the_next_step_boundary(rt1020, recipe, store):
    with SimHub(1) as hub:
        board = hub.plug("1-1.1", BoardFactory(rt1020, SLOW, seed=1)())
        station = Station(rt1020, recipe, {"1-1.1": "A1"}, records=store)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, station, SimHubSource(hub).run, 10.0)
            await wait_step(station, "1-1.1", "write")
            os.kill(os.getpid(), signal.SIGTERM)
        record = store.jobs()[0]
        assert (record["result"], record["step"]) == ("stopped", "verify")
        writes = board.commands("write-memory")
        assert [w.status for w in writes] == [0]  # the write in flight was completed, not cut
        # The blank check's read only: no verify, no reset.
        assert len(board.commands("read-memory")) == 1 and board.commands("reset") == []
        assert not hub.errors


async def test_sigterm_during_a_fuse_burn_completes_the_burn(rt1020, recipe, store):
    words = rt1020.fuse_group("SRK_HASH")
    plan = FusePlan("if-blank", tuple(FuseWord(w.name, w.index, 0xA5A5_0000 + n) for n, w in enumerate(words)))
    slow_fuses = dataclasses.replace(SLOW, fuse_program_s=0.1)
    with SimHub(1) as hub:
        board = hub.plug("1-1.1", BoardFactory(rt1020, slow_fuses, seed=2)())
        station = Station(rt1020, dataclasses.replace(recipe, fuses=plan), {"1-1.1": "A1"}, records=store)
        # SIGTERM as the third word starts to burn; its burn is held until gangd has cancelled.
        mid_burn = MidBurn(board, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with trio.fail_after(30):  # no SIGTERM ever comes if the burn is never seen
            async with trio.open_nursery() as nursery:
                # A grace far shorter than the burn: the cancel arrives while words are being burned.
                nursery.start_soon(serve, station, mid_burn.source(hub), 0.05)
        mid_burn.assert_mid_burn()
        assert [board.otp.read(w.index) for w in words] == [0xA5A5_0000 + n for n in range(8)]
        burned = [r.args[0] for r in board.commands("efuse-program-once")]
        assert sorted(burned) == sorted(w.index for w in words)  # each word once, none repeated
        record = store.jobs()[0]
        assert record["result"] == "stopped"
        assert [f["after"] for f in record["fuses"]] == [0xA5A5_0000 + n for n in range(8)]
        assert not hub.errors


@pytest.fixture
def config_dir(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "line.toml")
    (tmp_path / "ivt_flashloader.bin").write_bytes(build_flashloader_image()[0])
    (tmp_path / "app.bin").write_bytes(b"\x11" * 8192)
    return tmp_path


async def test_sighup_reloads_for_new_jobs_and_rejects_a_bad_file(rt1020, store, config_dir):
    config_path = config_dir / "line.toml"
    first = load_config(config_path)
    with SimHub(["1-1.1"]) as hub:
        factory = BoardFactory(rt1020, SLOW, seed=3)
        board_1 = hub.plug("1-1.1", factory())
        station = Station(rt1020, first.recipe, {"1-1.1": "A1"}, records=store)
        reload = lambda: load_config(config_path).recipe  # noqa: E731 - what gangd run passes

        async def next_board(count: int):
            await until(station.changes, lambda: len(station.results) >= count, f"{count} results", timeout=20)
            hub.unplug("1-1.1")
            return hub.plug("1-1.1", factory())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, station, SimHubSource(hub).run, 10.0, None, reload)
            await wait_step(station, "1-1.1", "write")
            # A valid new configuration: a new image, while board 1 is being written.
            (config_dir / "app.bin").write_bytes(b"\x22" * 8192)
            os.kill(os.getpid(), signal.SIGHUP)
            board_2 = await next_board(1)
            # An invalid one: rejected, the new-but-valid recipe stays.
            config_path.write_text(config_path.read_text().replace("id = 9 ", "id = 99 "))
            await wait_step(station, "1-1.1", "write")
            os.kill(os.getpid(), signal.SIGHUP)
            board_3 = await next_board(2)
            await until(station.changes, lambda: len(station.results) >= 3, "3 results", timeout=20)
            os.kill(os.getpid(), signal.SIGTERM)
        images = [row["images"][0]["sha256"] for row in store.jobs()]
        assert [row["result"] for row in store.jobs()] == ["success"] * 3
        assert board_1.flash_image(0x6000_0000, 8192) == b"\x11" * 8192  # finished on the old recipe
        assert board_2.flash_image(0x6000_0000, 8192) == b"\x22" * 8192  # new job, new recipe
        assert board_3.flash_image(0x6000_0000, 8192) == b"\x22" * 8192  # bad file rejected
        assert images[0] != images[1] == images[2]
        assert not hub.errors
