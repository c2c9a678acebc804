"""`gangd explain CODE`: every spsdk status code is explained; unknown input fails cleanly."""

from __future__ import annotations

import subprocess
import sys

import pytest
from spsdk.mboot.error_codes import StatusCode

from gangd.engine import explain as explain_mod
from gangd.engine import recovery
from gangd.engine.explain import Explanation, explain, one_line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gangd", "explain", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_20106_names_both_causes_and_the_frequencies() -> None:
    proc = run("20106")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lower = out.lower()
    assert out.startswith("20106 (0x4e8a) FlexSPINORCommandFailure")
    assert "marginal" in lower and "frequency" in lower  # cause 1: the fast read path
    assert "write-protected" in lower and "block-protect" in lower  # cause 2: the erase did not happen
    assert "133 MHz" in out and "100 MHz" in out
    assert "0xC0000006" in out
    assert "set-property 10 0" in out
    for label in ("meaning", "causes", "remedies", "gangd"):
        assert any(line.startswith(label) for line in out.splitlines())
    assert all(len(line) <= 100 for line in out.splitlines())


def test_hex_code_gives_the_same_text() -> None:
    assert run("0x4e8a").stdout == run("20106").stdout


@pytest.mark.parametrize("arg", ["99999", "abc"])
def test_unknown_or_non_numeric_code_exits_2_with_one_line(arg: str) -> None:
    proc = run(arg)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in proc.stderr
    assert ("unknown" if arg == "99999" else "not a number") in lines[0]


def test_unknown_family_exits_2() -> None:
    proc = run("20106", "--family", "nope")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_every_spsdk_code_is_explained() -> None:
    for member in StatusCode:
        exp = explain(member.tag)
        assert isinstance(exp, Explanation)
        assert exp.code == member.tag
        assert exp.name and exp.meaning.strip()
        assert exp.causes and exp.remedies and exp.action
        line = one_line(member.tag)
        assert "\n" not in line
        assert len(line) <= 200
        assert line.startswith(f"{member.tag}: ")


def test_unknown_code_raises_key_error() -> None:
    with pytest.raises(KeyError):
        explain(99999)
    with pytest.raises(KeyError):
        one_line(99999)


def test_one_line_for_20106() -> None:
    line = one_line(0x4E8A)
    assert line.startswith("20106: ")
    assert "FlexSPI clock" in line and "write-protected" in line
    assert "Erase/Program Verify Error" in explain(20106).meaning  # its name in flexspi_nor_flash.h
    assert len(line) <= 160


def test_family_changes_the_frequency_wording() -> None:
    # family_facts/flexspi_clocks.toml: code 7 is 133 MHz on RT1021 and RT1176, 120 MHz on RT1062
    # (whose 133 MHz is code 8); the RT1176 steps down by its own codes (100 MHz is code 5 there).
    assert "code 7 = 133 MHz" in explain(20106, "mimxrt1020").meaning
    assert "code 7 = 120 MHz" in explain(20106, "mimxrt1060").meaning
    assert "5 (100 MHz)" in explain(20106, "mimxrt1176").remedies[0]


def test_20106_action_does_not_depend_on_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    for klass in (recovery.TRANSIENT, recovery.BOARD, recovery.PERMANENT):
        monkeypatch.setattr(recovery, "classify", lambda *_a, k=klass: k)
        exp = explain(20106)
        assert exp.recovery_class == klass
        assert "safe clock" in exp.action and "power-cycle" in exp.action
    assert explain_mod.explain(10203).action.startswith("re-erase")


def test_class_actions_in_words() -> None:
    assert "fail the board at once" in explain(10200).action  # permanent: recipe mistake
    assert "reset the board over USB" in explain(1).action  # not in the table: board-class


def test_family_words_follow_its_facts_boot_window_and_clock_table() -> None:
    # family_facts: RT1060 boots FlexSPI at 0x60000000 (spsdk's first window is 0x30000000); MCX N
    # has no FlexSPI clock table, so no ladder is offered.
    assert "starts at 0x60000000" in explain(10200, "mimxrt1060").meaning
    assert "starts at 0x30000000" in explain(10200, "mimxrt1176").meaning
    assert "no ladder to step down" in explain(20106, "mcxn947").meaning
