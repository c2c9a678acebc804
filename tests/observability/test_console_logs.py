"""Levels hold whatever spsdk does to its loggers, and the operator's console is short."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from gangd.service import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers, level = saved
    root.setLevel(level)
    structlog.reset_defaults()


def spsdk_database_installs_its_handler() -> logging.Logger:
    """What spsdk's DatabaseManager does on first use: its own stderr handler, its logger at TRACE."""
    from spsdk.apps.utils import spsdk_logger

    logger = logging.getLogger("spsdk.utils.database")
    spsdk_logger.install(level=logging.WARNING, logger=logger, create_debug_logger=False)
    return logger


def emit_all() -> None:
    database = spsdk_database_installs_its_handler()
    database.debug("The device 'mcxc242' is already in database.")
    database.warning("Existing cached quick DB has invalid hash. It will be erased.")
    mboot = logging.getLogger("spsdk.mboot.mcuboot")
    mboot.debug("CMD: WriteMemory(address=0x60000000)")
    mboot.warning("a warning from spsdk's protocol layer")
    log = structlog.get_logger("gangd.engine.job")
    log.info("ready", ports=2)
    log.warning("step failed", step="erase", status=20106, label="A1")
    log.info(
        "job finished",
        label="A1",
        result="success",
        duration_s=1.234,
        attempts=1,
        marginal=True,
        flash_mhz=100,
        steps={"erase": 0.5, "write": 0.1},
    )
    log.info(
        "job finished",
        label="B2",
        result="failed",
        step="write",
        duration_s=0.9,
        reason="WriteMemory failed: 10200 (0x27d8) Memory Range Invalid. | 10200: address range outside",
    )


def test_json_keeps_spsdk_at_its_level_and_the_database_quiet(restore_logging, capsys):
    out = io.StringIO()
    logs.configure("info", json=True, spsdk_level="warning", stream=out)
    emit_all()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    spsdk = [(e["logger"], e["event"]) for e in lines if e["logger"].startswith("spsdk")]
    assert spsdk == [("spsdk.mboot.mcuboot", "a warning from spsdk's protocol layer")]
    finished = [e for e in lines if e["event"] == "job finished"]
    assert finished[0]["steps"] == {"erase": 0.5, "write": 0.1}  # JSON keeps every field
    assert any(e["event"] == "step failed" for e in lines)
    assert capsys.readouterr().err == ""  # spsdk's own stderr handler is mute


def test_spsdk_debug_level_lets_everything_through(restore_logging):
    out = io.StringIO()
    logs.configure("info", json=True, spsdk_level="debug", stream=out)
    emit_all()
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert "The device 'mcxc242' is already in database." in events and "CMD: WriteMemory(address=0x60000000)" in events


def test_the_operator_console(restore_logging, capsys):
    out = io.StringIO()
    logs.configure("info", json=False, spsdk_level="debug", stream=out)
    emit_all()
    text = out.getvalue()
    assert "spsdk" not in text and "database" not in text and "step failed" not in text
    assert "{" not in text
    lines = text.splitlines()
    assert len(lines) == 3, lines
    assert "A1" in lines[1] and "✔ success" in lines[1] and "1.2 s" in lines[1]
    assert "recovered: marginal flash, programmed at 100 MHz" in lines[1]
    assert "B2" in lines[2] and "✘ failed" in lines[2] and "write: WriteMemory failed: 10200" in lines[2]
    assert "address range outside" not in lines[2]  # the explanation is on the page and in the records
    assert capsys.readouterr().err == ""


def test_debug_console_shows_the_details(restore_logging):
    out = io.StringIO()
    logs.configure("debug", json=False, spsdk_level="debug", stream=out)
    emit_all()
    text = out.getvalue()
    assert "spsdk.mboot.mcuboot" in text and "step failed" in text and "erase" in text
