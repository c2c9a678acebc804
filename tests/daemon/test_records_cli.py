"""`gangd records` exports, and the sysfs port power switch."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import trio

from gangd.io.power import SysfsPortPower, disable_attribute
from gangd.service.records import RecordStore
from tests.support import GANGD


def test_records_list_and_export(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite")
    first = store.start(
        port="1-1.1",
        label="A1",
        serial="S1",
        family="mimxrt1020",
        images=[{"address": 0x60000000, "size": 4, "sha256": "ab"}],
        started=1.0,
    )
    store.update(
        first,
        result="success",
        board_id="00ff",
        finished=2.0,
        attempts=[
            {
                "attempt": 1,
                "step": "erase",
                "status": 20106,
                "error": "x",
                "class": "transient",
                "action": "reconfigure-memory",
            }
        ],
    )
    second = store.start(port="1-1.2", label="A2", serial="S2", family="mimxrt1020", images=[], started=3.0)
    store.update(second, result="failed", step="erase", reason="20106", status=20106)
    store.close()

    def records(*args):
        result = subprocess.run(
            [GANGD, "records", "--state-dir", str(tmp_path), *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    table = records()
    assert "A1" in table and "success" in table and "failed" in table
    lines = [json.loads(line) for line in records("--format", "jsonl").splitlines()]
    assert [row["result"] for row in lines] == ["success", "failed"]
    assert lines[0]["attempts"][0]["status"] == 20106
    rows = list(csv.DictReader(io.StringIO(records("--format", "csv", "--port", "A2"))))
    assert len(rows) == 1 and rows[0]["port"] == "1-1.2" and rows[0]["status"] == "20106"


def test_records_show_the_flash_clock_and_a_database_of_an_older_gangd_opens(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "records.sqlite")  # the schema before flash clocks were recorded
    old.executescript("""CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, port TEXT NOT NULL,
        label TEXT NOT NULL, serial TEXT, board_id TEXT, family TEXT NOT NULL, images TEXT NOT NULL,
        started REAL NOT NULL, finished REAL, result TEXT NOT NULL, step TEXT, reason TEXT, status INTEGER,
        steps TEXT NOT NULL DEFAULT '[]', attempts TEXT NOT NULL DEFAULT '[]', fuses TEXT NOT NULL DEFAULT '[]');
        INSERT INTO jobs (port, label, family, images, started, result) VALUES ('1-1.1', 'A1', 'mimxrt1020', '[]',
        1.0, 'success');""")
    old.close()
    store = RecordStore(tmp_path / "records.sqlite")
    marginal = store.start(port="1-1.2", label="A2", serial="S2", family="mimxrt1020", images=[], started=2.0)
    store.update(
        marginal,
        result="success",
        flash_clock_mhz=100,
        marginal=1,
        diagnoses=[{"step": "erase", "finding": "marginal-read-path", "failed_mhz": 133, "mhz": 100}],
    )
    rows = store.jobs()
    store.close()
    assert [(r["result"], r["flash_clock_mhz"], r["marginal"], r["diagnoses"]) for r in rows][0] == (
        "success",
        None,
        0,
        [],
    )
    assert rows[1]["diagnoses"][0]["mhz"] == 100
    table = subprocess.run(
        [GANGD, "records", "--state-dir", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    assert "MHZ" in table.splitlines()[0] and " 100*" in table.splitlines()[2]


def test_disable_attribute_paths():
    assert disable_attribute("1-1.3") == Path("/sys/bus/usb/devices/1-1/1-1:1.0/1-1-port3/disable")
    assert disable_attribute("2-4") == Path("/sys/bus/usb/devices/usb2/2-0:1.0/usb2-port4/disable")


async def test_power_cycle_writes_disable_then_enable(tmp_path):
    attribute = disable_attribute("1-1.3", tmp_path)
    attribute.parent.mkdir(parents=True)
    attribute.write_text("0")
    power = SysfsPortPower(sysfs=tmp_path, off_s=0.2)
    assert power.available("1-1.3") and not power.available("1-1.4")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(power.power_cycle, "1-1.3")
        await trio.sleep(0.1)
        assert attribute.read_text() == "1"  # power off …
    assert attribute.read_text() == "0"  # … and back on
