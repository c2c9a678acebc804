"""No traceback reaches an operator: a crash is one log line and a report in the state directory
(exit 1, restarted); what a restart cannot mend exits 2, which the unit's RestartPreventExitStatus
stops on; a file-descriptor limit too low for the station's ports is refused naming the setting."""

from __future__ import annotations

import re
import resource
import subprocess
from pathlib import Path

from gangd import __version__
from gangd.service import limits

from ..support import GANGD, free_port

ROOT = Path(__file__).parents[2]


def test_a_crash_is_one_line_and_a_report(tmp_path, monkeypatch, capsys):
    from gangd.cli import main
    from gangd.cli import run as run_verb

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the station")

    monkeypatch.setattr(run_verb, "run_world", broken)
    argv = ["run", "--simulate", "1", "--time-scale", "0", "--state-dir", str(tmp_path)]
    code = main([*argv, "--http-address", f"127.0.0.1:{free_port()}"])
    assert code == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    (line,) = [x for x in out.splitlines() if "crashed" in x]
    assert "RuntimeError: a bug in the station" in line
    (report,) = tmp_path.glob("crash-*.txt")
    assert str(report) in line
    text = report.read_text()
    assert f"gangd {__version__} crashed" in text and "sha256 none (--simulate)" in text
    assert "Traceback" in text and "RuntimeError: a bug in the station" in text


def test_the_unit_stops_restarting_on_exit_2_and_its_fd_limit_fits_128_ports():
    unit = (ROOT / "systemd" / "gangd.service").read_text()
    assert re.search(r"^RestartPreventExitStatus=2$", unit, re.M)
    nofile = int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M).group(1))
    assert nofile >= limits.needed_fds(128, 16)
    assert re.search(r"^MemoryMax=\d+[GM]$", unit, re.M)


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


def test_an_fd_limit_below_the_stations_need_is_refused_naming_the_setting(tmp_path):
    argv = [GANGD, "run", "--simulate", "64", "--time-scale", "0", "--state-dir", str(tmp_path)]
    result = subprocess.run(argv, capture_output=True, text=True, preexec_fn=_low_limit, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "file-descriptor limit 200 is below the" in result.stderr and "LimitNOFILE=" in result.stderr


def test_a_soft_limit_below_the_need_is_raised_to_it():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        assert limits.check_fd_limit(16, 2) == limits.needed_fds(16, 2)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limits.needed_fds(16, 2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
