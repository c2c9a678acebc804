"""Every verb that reads a file the operator names, fed a file that is not what it should be:
arbitrary bytes (hypothesis), text that is not UTF-8, TOML nested 5,000 deep, a device, a
directory, a FIFO. Each ends with exit 2 and one line on stderr naming the file, no traceback.

In-process (gangd.cli.main), so hundreds of examples cost seconds, not a process each."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gangd.cli import main

# Each verb with the file in its place; `{}` is the file's path.
VERBS: dict[str, Callable[[str], list[str]]] = {
    "check-config": lambda f: ["check-config", f],
    "plan": lambda f: ["plan", f],
    "db upgrade": lambda f: ["db", "upgrade", "--config", f],
    "udev-rules": lambda f: ["udev-rules", "--config", f],
    "records --line": lambda f: ["records", "--line", "--config", f],
    "run": lambda f: ["run", "--config", f],
    "import-script": lambda f: ["import-script", f],
    "trace show": lambda f: ["trace", "show", f],
}


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code or 0)
    return code, err.getvalue()


def assert_refused(argv: list[str], path: Path | str) -> str:
    code, err = run(argv)
    assert code == 2, (argv, code, err)
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert str(path) in err, err
    return err


@pytest.mark.parametrize("verb", VERBS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes(tmp_path, verb, content):
    path = tmp_path / "input"
    path.write_bytes(content)
    code, err = run(VERBS[verb](str(path)))
    if code == 0:
        return  # the bytes happened to be valid (an empty import script, say)
    assert code == 2, (verb, content, err)
    assert "Traceback" not in err and err.count("\n") == 1, err


NOT_UTF8 = b'family = "mimxrt1020"\n# \xd0\xd1 not UTF-8\n'
DEEP = b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n"


@pytest.mark.parametrize("verb", ["check-config", "plan", "db upgrade", "udev-rules", "run", "records --line"])
@pytest.mark.parametrize(("content", "reason"), [(NOT_UTF8, "not UTF-8 text"), (DEEP, "nested too deeply")])
def test_not_utf8_and_nested_past_reason(tmp_path, verb, content, reason):
    path = tmp_path / "gangd.toml"
    path.write_bytes(content)
    assert reason in assert_refused(VERBS[verb](str(path)), path)


def special(tmp_path: Path, kind: str) -> Path:
    if kind == "device":
        return Path("/dev/zero")
    if kind == "directory":
        return tmp_path
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["device", "directory", "fifo"])
@pytest.mark.parametrize("verb", VERBS)
def test_a_device_directory_or_fifo_is_not_a_file(tmp_path, verb, kind):
    path = special(tmp_path, kind)
    assert_refused(VERBS[verb](str(path)), path)


@pytest.mark.parametrize("kind", ["device", "directory", "fifo"])
@pytest.mark.parametrize("what", ["flashloader", "image"])
def test_flashloader_or_image_path_naming_a_device_directory_or_fifo(tmp_path, kind, what):
    from .test_hostile_files import EXAMPLE, setup_dir

    setup_dir(tmp_path)
    path = special(tmp_path, kind)
    name = "ivt_flashloader.bin" if what == "flashloader" else "app.bin"
    config = tmp_path / "gangd.toml"
    config.write_text(EXAMPLE.replace(f'"{name}"', f'"{path}"'))
    err = assert_refused(["check-config", str(config)], path)
    assert "no such file" not in err
