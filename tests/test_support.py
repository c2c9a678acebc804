"""The shared test support (tests/support): a child that fills its stderr pipe is still read, a
child that exits without the awaited line fails the wait at once, and a condition wait names
what it waited for."""

from __future__ import annotations

import sys
import time

import pytest
import trio

from gangd.station.station import Changes

from .support import until, write_line_config
from .support.net import free_port

CHATTY = (
    "import sys; sys.stderr.write('x' * 1_000_000); sys.stderr.flush(); print('done', flush=True); sys.stdin.read()"
)


def test_a_child_that_fills_its_stderr_pipe_still_gets_its_stdout_read(processes):
    # 1 MB on stderr is far past a pipe's 64 KiB: unread, the child would block before 'done'.
    child = processes([sys.executable, "-c", CHATTY], stdin=-1)  # subprocess.PIPE: it waits for its end
    assert child.wait_until(lambda p: "done\n" in p.stdout_lines, 20, "the child's 'done'")
    child.process.stdin.close()
    assert child.wait(20) == 0
    assert len(child.stderr) == 1_000_000  # one unfinished line, kept whole once the child ended


def test_a_child_that_exits_without_the_line_fails_the_wait_at_once(processes):
    child = processes([sys.executable, "-c", "import sys; print('bye'); sys.stderr.write('why\\n')"])
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        child.wait_until(lambda p: "never\n" in p.stdout_lines, 60, "a line it never writes")
    assert time.monotonic() - started < 30  # not the whole 60 s: the child had gone
    assert "a line it never writes" in str(failure.value) and "exit status 0" in str(failure.value)
    assert "bye" in str(failure.value) and "why" in str(failure.value)


async def test_until_is_woken_by_the_change_signal_and_names_what_it_waited_for():
    changes, box = Changes(), []
    async with trio.open_nursery() as nursery:

        async def later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            box.append(1)
            changes.notify()

        nursery.start_soon(later)
        assert await until(changes, lambda: box, "a value in the box", timeout=5) == [1]
    with pytest.raises(AssertionError, match="timed out after 0.01 s waiting for nothing at all"):
        await until(changes, lambda: False, "nothing at all", timeout=0.01)


def test_the_line_config_loads(tmp_path):
    from gangd.config.loader import load_config

    path = write_line_config(
        tmp_path,
        {"1-1.1": "A1", "1-1.2": "A2"},
        b"\x5a" * 4096,
        http_address=f"127.0.0.1:{free_port()}",
        control_token="test-token-0123456789abcdef",
        layout=["A1 A2"],
        fuses={"SRK_HASH": "0x" + "11" * 32},
        recovery={"backoff_s": 0.05, "power_cycle": True},
        deadlines={"command_s": 3.0},
        board_data=[{"name": "serial", "source": "counter", "format": "SN{:06d}", "address": 0x6010_0000, "size": 16}],
    )
    config = load_config(path)
    assert config.recipe.images[0].data == b"\x5a" * 4096
    assert [w.value for w in config.recipe.fuses.words] == [0x1111_1111] * 8
    assert config.recipe.deadlines.command_s == 3.0 and config.recipe.recovery.power_cycle
