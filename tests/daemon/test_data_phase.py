"""The data phases cost what their reports cost: no log line and no progress report per packet.

A 1 MiB image is about 1,040 reports written and as many read back; a data phase that logged or
reported progress per report would show thousands of each here. The stream reports progress at
most every 50 ms (gangd/io/transport/stream.py), which at time scale 0 is a handful per job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import pytest

from gangd.config.recipe import Image
from gangd.sim import BoardFactory, TimingModel
from gangd.sim.board import SimBoard
from gangd.station.port import Port

pytestmark = pytest.mark.trio

BASE = 0x6000_0000
MIB = 1024 * 1024
PACKET = 1012  # the flashloader's HID payload per report (MaxPacketSize)


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1


async def test_a_1_mib_image_is_written_and_read_back_without_per_packet_logs_or_progress(
    line, recipe, rt1020, monkeypatch
):
    image = hashlib.shake_256(b"data-phase").digest(MIB)
    run = await line(1, recipe_override=dataclasses.replace(recipe, images=(Image(BASE, image),)), plug=False)
    progress: list[float] = []
    told = Port.progress_changed

    def counted(self, fraction: float) -> None:
        progress.append(fraction)
        told(self, fraction)

    monkeypatch.setattr(Port, "progress_changed", counted)
    # Every level down to spsdk's TRACE (5) is counted, from gangd, structlog and spsdk alike.
    handler, root, spsdk = Counting(), logging.getLogger(), logging.getLogger("spsdk")
    levels = root.level, spsdk.level
    root.addHandler(handler)
    root.setLevel(1)
    spsdk.setLevel(1)
    try:
        board = run.hub.plug("1-1.1", SimBoard(BoardFactory(rt1020, TimingModel(time_scale=0), seed=5)()))
        result = (await run.wait_results(1))[0]
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        spsdk.setLevel(levels[1])
    assert result.result == "success", result.reason
    assert board.flash_image(BASE, MIB) == image
    reports = 2 * -(-MIB // PACKET)  # written, then read back
    # Per step, per command and a few per data phase: far below one per report.
    assert len(progress) < reports // 20, len(progress)
    assert handler.records < reports // 10, handler.records
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
