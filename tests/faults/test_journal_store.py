"""The journal's faults, on the store itself: each one named in the operator's words, a completion
held in memory while it lasts and written when it ends, a start refused (so no board is touched)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from gangd.core.errors import JournalDamaged, JournalUnwritable
from gangd.service.records import RecordStore

ROW = {"port": "1-1.1", "label": "A1", "family": "mimxrt1020", "images": [], "started": 0.0}


def test_locked_by_another_process_then_released(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path, busy_timeout_s=0.05)
    running = store.start(**ROW)
    backup = sqlite3.connect(path, isolation_level=None)
    backup.execute("BEGIN IMMEDIATE")  # a tool holding the write lock (sqlite3 .backup, a checkpoint)
    try:
        assert store.update(running, result="success", finished=time.time()) is False  # held, not lost
        assert store.held[running]["result"] == "success"
        assert store.fault == f"journal locked by another process: {path}"
        with pytest.raises(JournalUnwritable):
            store.start(**ROW)  # no new row (no new job) while anything is owed
        assert store.recover() is False
    finally:
        backup.execute("ROLLBACK")
        backup.close()
    assert store.recover() is True
    assert store.fault is None and not store.held
    assert [(r["id"], r["result"]) for r in store.jobs()] == [(running, "success")]
    store.close()


def test_start_owed_interrupted_mark_is_written_first(tmp_path):
    path = tmp_path / "records.sqlite"
    first = RecordStore(path)
    left = first.start(**ROW)
    first.close()
    store = RecordStore(path, busy_timeout_s=0.05)
    backup = sqlite3.connect(path, isolation_level=None)
    backup.execute("BEGIN IMMEDIATE")
    with pytest.raises(JournalUnwritable):
        store.mark_interrupted()
    backup.execute("ROLLBACK")
    backup.close()
    with pytest.raises(JournalUnwritable):
        store.start(**ROW)  # the owed marking comes first, else the new row would be marked too
    assert store.recover() is True
    new = store.start(**ROW)
    assert {r["id"]: r["result"] for r in store.jobs()} == {left: "interrupted", new: "running"}
    store.close()


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"not a database at all\n" * 100, "not a SQLite database"),
        (None, "a SQLite database of another program"),
    ],
)
def test_a_damaged_or_foreign_journal_is_named_and_left_alone(tmp_path, content, what):
    path = tmp_path / "records.sqlite"
    if content is None:
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE photos (id INTEGER)")
        other.commit()
        other.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(JournalDamaged, match=f"^{path}: {what}.*move it aside"):
        RecordStore(path)
    assert path.read_bytes() == before  # never deleted or overwritten


def records(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from gangd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["records", *argv])
    return code, out.getvalue(), err.getvalue()


def test_records_check_finds_a_damaged_page_and_passes_a_sound_journal(tmp_path):
    path = tmp_path / "records.sqlite"
    store = RecordStore(path)
    for _ in range(200):
        store.start(**{**ROW, "port": "1-1.1" * 40})
    store.close()
    assert records("--state-dir", str(tmp_path), "--check") == (0, "", f"{path}: ok\n")
    raw = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(raw), page):  # every b-tree page past the header: an invalid type
        raw[start] = 0x55
    path.write_bytes(bytes(raw))
    code, out, err = records("--state-dir", str(tmp_path), "--check")
    assert code == 2 and "damaged" in err and err.count("\n") == 1, (code, out, err)
    assert "Traceback" not in err


def test_records_and_run_on_a_journal_that_is_not_one(tmp_path):
    path = tmp_path / "records.sqlite"
    path.write_bytes(b"\x00garbage" * 1000)
    code, _, err = records("--state-dir", str(tmp_path))
    assert code == 2 and err.startswith(f"gangd records: {path}: not a SQLite database") and err.count("\n") == 1
    import contextlib
    import io

    from gangd.cli import main

    err_run = io.StringIO()
    with contextlib.redirect_stderr(err_run), contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "run",
                "--simulate",
                "1",
                "--time-scale",
                "0",
                "--state-dir",
                str(tmp_path),
                "--http-address",
                "127.0.0.1:0",
            ]
        )
    assert code == 2, err_run.getvalue()
    assert err_run.getvalue().startswith(f"gangd: {path}: not a SQLite database")
    assert path.read_bytes() == b"\x00garbage" * 1000
