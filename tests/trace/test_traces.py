"""Field traces: recorded by gangd's job, opened by tshark, shown by `gangd trace show`, replayed
by a simulated board that ends the job as the recorded one ended.

The traces in tests/data/traces/ are remade by `python -m tools.make_traces`, with the recipe
the replays below use (`trace_recipe`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from gangd import __version__
from gangd.cli import main
from gangd.config.family import load_family
from gangd.config.loader import ConfigError, load_config
from gangd.config.recipe import Image, TraceSettings
from gangd.service.daemon import reloader
from gangd.sim.images import build_flashloader_image
from gangd.sim.replay import ReplayBoard
from gangd.trace import file as tf
from gangd.trace.recorder import rotate
from tests.support import GANGD
from tools.make_traces import CASES, IMAGE, IMAGE_PATTERN, board_spec, record, run_one, trace_recipe

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces"
ALL = sorted(TRACES.glob("*.pcapng"))


def test_every_fault_kind_has_a_trace():
    assert {p.stem for p in ALL} == set(CASES) | {"good-hash"}


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
async def test_replay_ends_as_recorded(path):
    trace = tf.read(str(path))
    board = ReplayBoard(trace, load_family(trace.meta["family"]), time_scale=1.0)
    result = await run_one(trace_recipe(), board)
    assert board.divergence is None
    assert (result.result, result.step, result.reason) == (
        trace.meta["result"],
        trace.meta["step"],
        trace.meta["reason"],
    )
    assert result.board_id == trace.meta["board"]


async def test_a_replay_asked_something_else_diverges_and_the_job_says_where():
    trace = tf.read(str(TRACES / "good.pcapng"))
    # The image's first data report out is where another image's conversation parts from the trace.
    flashloader_at = next(
        i for i, e in enumerate(trace.entries) if e.kind == tf.EVENT and e.event.get("stage") == "flashloader"
    )
    numbers = [n for n, e in enumerate(trace.reports(), 1)]
    first_data_out = next(
        numbers[trace.reports().index(e)]
        for e in trace.entries[flashloader_at:]
        if e.kind == tf.OUT and e.data[0] == tf.MBOOT_DATA_OUT
    )
    other = trace_recipe()
    other = replace(other, images=(Image(other.images[0].address, bytes(reversed(IMAGE))),))
    board = ReplayBoard(trace, load_family("mimxrt1020"), time_scale=0)
    result = await run_one(other, board)
    assert board.diverged_report == first_data_out
    assert result.result == "failed"
    # The status the replayed board answered is explained as the divergence, apart from the reason.
    assert f"replay diverged at report {first_data_out}" in (result.explanation or ""), result


async def test_a_live_job_records_its_trace_and_it_replays(tmp_path):
    """The recorder itself (not a stored file): a marginal board's job, then its replay."""
    path = await record("marginal", CASES["marginal"], tmp_path)
    trace = tf.read(str(path))
    events = [e.event["event"] for e in trace.entries if e.kind == tf.EVENT]
    stages = [e.event["stage"] for e in trace.entries if e.kind == tf.EVENT and e.event["event"] == "add"]
    assert stages[:2] == ["rom", "flashloader"] and "clock-fallback" in events
    assert trace.meta["marginal"] and trace.meta["flash_mhz"] == 100
    board = ReplayBoard(trace, load_family("mimxrt1020"), time_scale=1.0)
    result = await run_one(trace_recipe(), board)
    assert (result.result, result.marginal, result.flash_clock_mhz) == ("success", True, 100)


async def test_keep_failed_writes_no_trace_for_a_good_board(tmp_path):
    recipe = trace_recipe(TraceSettings(str(tmp_path), keep="failed"))
    result = await run_one(recipe, board_spec(()))
    assert result.result == "success"
    assert os.listdir(tmp_path) == []
    result = await run_one(recipe, board_spec(CASES["disconnect"]))
    assert result.result == "removed"
    assert [name.endswith("-removed.pcapng") for name in os.listdir(tmp_path)] == [True]


def test_rotation_removes_the_oldest_traces_beyond_the_cap(tmp_path):
    for n in range(5):
        path = tmp_path / f"t{n}.pcapng"
        path.write_bytes(bytes(1000))
        os.utime(path, ns=(n * 10**9, n * 10**9))
    (tmp_path / "notes.txt").write_bytes(bytes(5000))  # not a trace: never removed
    removed, left = rotate(str(tmp_path), 2500, keep=str(tmp_path / "t0.pcapng"))
    assert left == 2000
    assert sorted(os.path.basename(p) for p in removed) == ["t1.pcapng", "t2.pcapng", "t3.pcapng"]
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "t0.pcapng", "t4.pcapng"]


def test_a_hashed_trace_holds_no_image_bytes_but_their_digest():
    full = (TRACES / "good.pcapng").read_bytes()
    hashed = (TRACES / "good-hash.pcapng").read_bytes()
    assert IMAGE_PATTERN in full  # the pattern is findable where it is
    assert IMAGE_PATTERN not in hashed
    trace = tf.read(str(TRACES / "good-hash.pcapng"))
    digests = [e.event for e in trace.entries if e.kind == tf.EVENT and e.event.get("event") == "data"]
    written = [d for d in digests if d["dir"] == "out" and d["bytes"] == len(IMAGE)]
    assert [d["sha256"] for d in written] == [hashlib.sha256(IMAGE).hexdigest()]
    # Commands and responses are kept whole: the write's command still says where and how much.
    assert any(e.kind == tf.OUT and e.data[:1] == b"\x01" and not e.hashed for e in trace.entries)


@pytest.mark.parametrize("name", ["good", "marginal"])
def test_tshark_opens_the_trace_and_finds_every_report(name):
    path = TRACES / f"{name}.pcapng"
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "usb.transfer_type == 0x01", "-T", "fields", "-e", "usb.endpoint_address"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    reports = tf.read(str(path)).reports()
    assert len(out) == len(reports)
    assert out.count("0x81") == sum(e.kind == tf.IN for e in reports)  # interrupt IN, endpoint 1
    comments = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "udev add port 1-1.1 15a2:0073 stage flashloader" in comments  # the re-enumeration
    summary = subprocess.run(["capinfos", str(path)], capture_output=True, text=True, check=True).stdout
    assert f"gangd {__version__} trace: job" in summary and "board 62032801b65c1c28" in summary
    if name == "marginal":  # the erase's 20106 (0x4e8a) as Wireshark shows the response's bytes
        data = subprocess.run(
            ["tshark", "-r", str(path), "-T", "fields", "-e", "usb.capdata"], capture_output=True, text=True, check=True
        ).stdout
        assert "8a4e0000" in data


def test_show_names_the_marginal_boards_20106_and_clock_fallback(capsys):
    assert main(["trace", "show", str(TRACES / "marginal.pcapng")]) == 0
    out = capsys.readouterr().out
    assert "flash-erase-region: 20106 (0x4e8a) FlexSPINOR: Command Failure" in out
    assert "clock fallback: flash read clock lowered to 100 MHz" in out
    assert "udev add port 1-1.1 15a2:0073 stage flashloader" in out  # the re-enumeration


def test_show_jsonl(capsys):
    assert main(["trace", "show", "--format", "jsonl", str(TRACES / "status.pcapng")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["kind"] == "trace" and rows[0]["result"] == "success"
    assert any(r.get("status") == 20106 and r["kind"] == "response" for r in rows[1:])


@pytest.mark.parametrize("damage", ["truncated", "foreign", "pcap"])
def test_show_a_bad_file_says_which_and_what_in_one_line(tmp_path, capsys, damage):
    path = tmp_path / f"{damage}.pcapng"
    data = (TRACES / "good.pcapng").read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    else:  # a capture in the older libpcap format: its global header, LINKTYPE_USB_LINUX_MMAPPED
        path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 220))
    assert main(["trace", "show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "Traceback" not in err
    assert ("truncated" if damage == "truncated" else "not a pcapng file") in err


def test_run_replay_of_a_bad_file_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"nothing")
    assert main(["run", "--simulate", "1", "--replay", str(bad), "--state-dir", str(tmp_path)]) == 2
    assert str(bad) in capsys.readouterr().err


def _with_trace_table(tmp_path, table: str) -> Path:
    for name in ("recipe.toml", "flashloader.bin", "image.bin"):
        shutil.copy(TRACES / name, tmp_path / name)
    path = tmp_path / "recipe.toml"
    path.write_text(path.read_text() + "\n[trace]\n" + table)
    return path


def test_trace_table_is_read_with_its_defaults(tmp_path):
    trace = load_config(_with_trace_table(tmp_path, 'dir = "traces"\npayload = "hash"\nmax_mb = 1\n')).recipe.trace
    assert trace == TraceSettings(str(tmp_path / "traces"), keep="failed", payload="hash", max_bytes=2**20)
    assert trace.max_job_bytes == 8 * 2**20  # a job's conversation in memory: 8 MiB unless told
    table = 'dir = "t"\nmax_job_mb = 0.5\n'
    assert load_config(_with_trace_table(tmp_path, table)).recipe.trace.max_job_bytes == 2**19
    assert load_config(TRACES / "recipe.toml").recipe.trace is None  # no [trace]: no traces


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('dir = "t"\nkeep = "some"\n', "trace.keep"),
        ('dir = "t"\npayload = "zip"\n', "trace.payload"),
        ("keep = 'all'\n", "trace.dir"),
        ('dir = "t"\nmax_mb = 0\n', "trace.max_mb"),
        ('dir = "t"\nmax_job_mb = -1\n', "trace.max_job_mb"),
    ],
)
def test_a_wrong_trace_setting_is_named(tmp_path, table, key):
    with pytest.raises(ConfigError) as error:
        load_config(_with_trace_table(tmp_path, table))
    assert key in str(error.value) and str(tmp_path / "recipe.toml") in str(error.value)


def test_gangd_run_trace_dir_keeps_a_failed_boards_trace(processes, tmp_path):
    """`gangd run --simulate 1 --trace DIR`, end to end: the removed board's trace appears in DIR
    (its log line says so), then gangd is stopped."""
    traces = tmp_path / "traces"
    process = processes(
        [GANGD, "run", "--simulate", "1", "--boards", "1", "--time-scale", "0", "--trace", str(traces)]
        + ["--fault", "disconnect:cmd=write-memory,after=1024", "--state-dir", str(tmp_path / "state")]
        + ["--http-address", "127.0.0.1:0"]
    )
    process.wait_entry(lambda e: "trace written" in e["event"], 60, "gangd's 'trace written' line")
    assert process.stop() == 0, process.tail()
    (written,) = traces.iterdir()
    trace = tf.read(str(written))
    assert trace.meta["result"] == "removed" and trace.meta["port"] == written.name.split("-job")[0][16:]


@pytest.mark.parametrize(
    "event",
    [
        {"event": 5},
        {"event": "add", "vid": "x", "pid": 1},
        {"event": "data", "dir": "out", "bytes": 3},
        {"no": "event"},
    ],
)
def test_a_trace_with_a_malformed_event_is_refused_in_one_line(tmp_path, capsys, event):
    trace = tf.read(str(TRACES / "good.pcapng"))
    trace.entries.insert(1, tf.Entry(tf.EVENT, trace.entries[0].t_ns, event=event))
    path = tmp_path / "odd.pcapng"
    tf.write(str(path), trace.meta, trace.entries)
    assert main(["trace", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{path}: event packet 2" in err
    with pytest.raises(tf.TraceError):
        tf.read(str(path))


async def test_a_replay_diverging_in_the_rom_stage_fails_the_job_and_names_the_report():
    """In SDP, spsdk knows only its own status codes: the job fails on the ROM's answer, and the
    replayed board names the report (gangd sim --replay prints it)."""
    trace = tf.read(str(TRACES / "good.pcapng"))
    other = replace(trace_recipe(), flashloader=build_flashloader_image(load_address=0x2000_0000, code_size=0x900)[0])
    board = ReplayBoard(trace, load_family("mimxrt1020"), time_scale=0)
    result = await run_one(other, board)
    assert board.diverged_report == 1  # the write-file command names another length
    assert (result.result, result.step) == ("failed", "load-flashloader")


def test_a_reload_keeps_the_trace_dir_given_on_the_command_line(tmp_path):
    reload = reloader(str(TRACES / "recipe.toml"), str(tmp_path / "traces"))
    assert reload().trace == TraceSettings(str(tmp_path / "traces"))


async def test_an_unwritable_trace_dir_never_fails_the_job(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")  # a file where the directory should be
    result = await run_one(trace_recipe(TraceSettings(str(blocked / "traces"), keep="all")), board_spec(()))
    assert result.result == "success"


@pytest.mark.parametrize("args", [["--hub", "1"], ["--uart"]])
def test_sim_replay_refuses_a_bad_file_or_a_uart_in_one_line(tmp_path, capsys, args):
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(8))
    replay = str(bad) if args == ["--hub", "1"] else str(TRACES / "good.pcapng")
    assert main(["sim", *args, "--replay", replay]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (str(bad) in err) if args == ["--hub", "1"] else ("--hub N or --hidraw" in err)


def test_a_long_trace_is_written_whole_and_read_back_as_it_was(tmp_path):
    """More pieces than one writev takes (IOV_MAX 1024): every report comes back, in order."""
    reports = [
        tf.Entry(
            tf.OUT if n % 2 else tf.IN,
            10**18 + n,
            (bytes([1 + n % 4]) + n.to_bytes(4, "little")).ljust(1016, b"\0"),
            1016,
        )
        for n in range(3000)
    ]
    entries = [tf.Entry(tf.EVENT, 10**18 - 1, event={"event": "add", "vid": 1, "pid": 2, "stage": "rom"}), *reports]
    path = tmp_path / "long.pcapng"
    size = tf.write(str(path), {"version": "t"}, entries)
    assert path.stat().st_size == size
    back = tf.read(str(path)).entries
    assert [(e.kind, e.t_ns, e.data, e.length) for e in back[1:]] == [(e.kind, e.t_ns, e.data, 1016) for e in reports]
