"""spsdk's command-line tools drive a simulated board over its pseudo-terminal, unchanged.

This is the user's own flow from the log, one blhost/sdphost process per command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gangd.sim import SimBoard
from gangd.sim.uart import UartBoard

BIN = Path(sys.executable).parent


def tool(name: str, port: str, *args: str) -> str:
    result = subprocess.run([str(BIN / name), "-p", port, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{name} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def uart_board(boards):
    with UartBoard(SimBoard(boards())) as board:
        yield board
        assert board.error is None


def test_sdphost_and_blhost_run_the_users_flow(uart_board, flashloader_image, tmp_path):
    image, jump = flashloader_image
    (tmp_path / "fl.bin").write_bytes(image)
    app = os.urandom(45056)
    (tmp_path / "app.bin").write_bytes(app)
    port = uart_board.path

    assert "Hab Is Disabled" in tool("sdphost", port, "error-status")
    assert "Write File Success" in tool("sdphost", port, "write-file", "0x20000000", str(tmp_path / "fl.bin"))
    tool("sdphost", port, "jump-address", hex(jump))

    assert "Current Version = K1.6.0" in tool("blhost", port, "get-property", "1")
    tool("blhost", port, "fill-memory", "0x2000", "4", "0xC0000007", "word")
    tool("blhost", port, "configure-memory", "9", "0x2000")
    tool("blhost", port, "flash-erase-region", "0x60000000", "45056", "0")
    tool("blhost", port, "write-memory", "0x60000000", str(tmp_path / "app.bin"))
    tool("blhost", port, "read-memory", "0x60000000", "45056", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == app
    tool("blhost", port, "efuse-program-once", "0x28", "0x12345678")
    assert "0x12345678" in tool("blhost", port, "efuse-read-once", "0x28").lower()
    tool("blhost", port, "reset")
    # Back in the ROM after the reset, on the same pty.
    assert "Hab Is Disabled" in tool("sdphost", port, "error-status")

    board = uart_board.board
    assert board.flash_image(0x6000_0000, len(app)) == app
    assert [r.command for r in board.commands() if r.stage == "flashloader"] == [
        "get-property",
        "fill-memory",
        "configure-memory",
        "flash-erase-region",
        "get-property",
        "write-memory",
        "read-memory",
        "efuse-program-once",
        "efuse-read-once",
        "reset",
    ]


def test_blhost_prints_the_users_failure(boards, flashloader_image, tmp_path):
    board = SimBoard(boards(faults=("status:cmd=flash-erase-region,code=20106",), stage="flashloader"))
    with UartBoard(board) as uart:
        tool("blhost", uart.path, "fill-memory", "0x2000", "4", "0xC0000007", "word")
        tool("blhost", uart.path, "configure-memory", "9", "0x2000")
        result = subprocess.run(
            [str(BIN / "blhost"), "-p", uart.path, "flash-erase-region", "0x60000000", "45056", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "20106 (0x4e8a) FlexSPINOR: Command Failure." in result.stdout + result.stderr


def blhost_status(port: str, *args: str) -> str:
    """Run one blhost command that is expected to fail; its printed status line."""
    result = subprocess.run([str(BIN / "blhost"), "-p", port, *args], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"blhost {' '.join(args)} succeeded:\n{output}"
    return output


def test_blhost_the_users_sequence_on_a_marginal_board(boards, tmp_path):
    """Reads above 100 MHz are unreliable on this board: the user's option 0xC0000007 (133 MHz)
    gives the user's 20106 on erase, option 0xC0000006 (100 MHz) works."""
    board = SimBoard(boards(faults=("marginal-read:max-mhz=100",), stage="flashloader"))
    app = os.urandom(45056)
    (tmp_path / "app.bin").write_bytes(app)
    with UartBoard(board) as uart:
        tool("blhost", uart.path, "fill-memory", "0x2000", "4", "0xC0000007", "word")
        tool("blhost", uart.path, "configure-memory", "9", "0x2000")
        failure = blhost_status(uart.path, "flash-erase-region", "0x60000000", "45056", "0")
        assert "20106 (0x4e8a) FlexSPINOR: Command Failure." in failure

        tool("blhost", uart.path, "fill-memory", "0x2000", "4", "0xC0000006", "word")
        tool("blhost", uart.path, "configure-memory", "9", "0x2000")
        tool("blhost", uart.path, "flash-erase-region", "0x60000000", "45056", "0")
        tool("blhost", uart.path, "write-memory", "0x60000000", str(tmp_path / "app.bin"))
        tool("blhost", uart.path, "read-memory", "0x60000000", "45056", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == app
    assert board.flash_image(0x6000_0000, len(app)) == app


def test_blhost_meets_each_flashloader_rule(boards, tmp_path):
    board = SimBoard(boards(stage="flashloader"))
    (tmp_path / "page.bin").write_bytes(b"\x11" * 256)
    with UartBoard(board) as uart:
        port = uart.path
        assert "10205" in blhost_status(port, "flash-erase-region", "0x60000000", "4096", "0")  # not configured
        tool("blhost", port, "fill-memory", "0x2000", "4", "0xC0000007", "word")
        tool("blhost", port, "configure-memory", "9", "0x2000")
        # Misaligned: widened to the whole sector 0x60001000-0x60001fff, and it succeeds.
        tool("blhost", port, "write-memory", "0x60001000", str(tmp_path / "page.bin"))
        tool("blhost", port, "flash-erase-region", "0x60001100", "16", "0")
        assert board.flash_image(0x6000_1000, 256) == b"\xff" * 256
        tool("blhost", port, "write-memory", "0x60001000", str(tmp_path / "page.bin"))
        assert "10203" in blhost_status(port, "write-memory", "0x60001000", str(tmp_path / "page.bin"))  # unerased
        assert "20105" in blhost_status(port, "write-memory", "0x60002010", str(tmp_path / "page.bin"))  # mid-page
        assert "10200" in blhost_status(port, "read-memory", "0x70000000", "16")  # outside every region
        assert "10000" in blhost_status(port, "flash-read-resource", "0", "4", "0")  # not implemented
    assert board.flash_image(0x6000_1000, 256) == b"\x11" * 256
