"""A family whose ROM is the MCU bootloader (LPC55S69): no flashloader, the ROM programs its own
internal flash; configured from a file, planned, provisioned end to end on simulated boards."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from gangd.config.family import load_family
from gangd.config.loader import load_config
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.station.station import Station
from tests.support import GANGD

IMAGE = os.urandom(20_000)

CONFIG = """family = "lpc55s69"
[station.ports]
"1-1.1" = "B1"
"1-1.2" = "B2"
"1-1.3" = "B3"
[memory]
id = 0                      # internal flash: no flashloader, no configure-memory
[[image]]
path = "app.bin"
address = 0x0
[deadlines]
command_s = 5
"""


@pytest.fixture
def lpc_config(tmp_path) -> Path:
    (tmp_path / "app.bin").write_bytes(IMAGE)
    path = tmp_path / "lpc.toml"
    path.write_text(CONFIG)
    return path


def test_plan_has_no_flashloader_and_no_configure_memory(lpc_config):
    result = subprocess.run([GANGD, "plan", str(lpc_config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = [line.split(" -- ")[1].split()[0] for line in result.stdout.splitlines() if " -- " in line]
    assert commands == ["get-property"] * 3 + ["flash-erase-region", "write-memory", "read-memory", "reset"]
    assert "-u 0x1FC9,0x0021" in result.stdout  # the ROM's own ids, from spsdk's database
    assert "flash-erase-region 0x0 32768 0" in result.stdout  # one 32 KiB sector (FlashSectorSize)


def test_udev_rules_list_the_rom_ids():
    result = subprocess.run([GANGD, "udev-rules", "--family", "lpc55s69"], capture_output=True, text=True, timeout=60)
    assert 'ATTRS{idVendor}=="1fc9", ATTRS{idProduct}=="0021"' in result.stdout


def test_a_flashloader_table_is_refused_for_an_mboot_rom(lpc_config):
    lpc_config.write_text(
        CONFIG + '[flashloader]\npath = "app.bin"\nload_address = 0x20000000\njump_address = 0x20000000\n'
    )
    result = subprocess.run([GANGD, "check-config", str(lpc_config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "is an MCU bootloader: it needs no flashloader" in result.stderr


@pytest.mark.trio
async def test_lpc55s69_boards_are_programmed_through_their_rom(lpc_config, tmp_path, nursery):
    config = load_config(lpc_config)
    family = load_family("lpc55s69")
    factory = BoardFactory(family, TimingModel(time_scale=0), seed=55)
    with SimHub(list(config.ports), seed=5) as hub:
        boards = [hub.plug(path, factory()) for path in config.ports]
        station = Station(family, config.recipe, config.ports, power=SimPortPower(hub))
        done = trio.Event()
        station.listeners.append(lambda _: done.set() if len(station.results) == 3 else None)
        await nursery.start(station.run, SimHubSource(hub).run)
        with trio.fail_after(20):
            await done.wait()
        assert {r.result for r in station.results} == {"success"}, [r.reason for r in station.results]
        for board in boards:
            assert board.flash_image(0, len(IMAGE)) == IMAGE
            assert not board.commands("configure-memory") and not board.commands("write-file")
        assert all(port.progress == 1.0 for port in station.ports.values())
        nursery.cancel_scope.cancel()
