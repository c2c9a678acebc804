"""The unit file passes systemd's own checks; the shipped udev rules are what gangd generates."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import GANGD

ROOT = Path(__file__).parents[2]


def installed_unit(tmp_path: Path) -> Path:
    """The unit as shipped, with ExecStart pointing at this checkout's gangd (verify needs it to exist)."""
    unit = tmp_path / "gangd.service"
    unit.write_text((ROOT / "systemd" / "gangd.service").read_text().replace("/usr/local/bin/gangd", GANGD))
    return unit


def test_systemd_analyze_verify(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installed_unit(tmp_path))], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_security_exposure_is_at_least_ok(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(installed_unit(tmp_path))], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for gangd\.service: ([\d.]+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    score, level = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security: {score} {level}")
    assert level in ("SAFE", "OK") and score <= 3.5


def test_unit_declares_what_the_service_needs():
    unit = (ROOT / "systemd" / "gangd.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=gangd",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DevicePolicy=closed",
        "DeviceAllow=char-hidraw rw",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
        "User=gangd",
    ):
        assert line in unit
    # Write access to /sys only through the power-cycle drop-in.
    assert "ReadWritePaths" not in unit
    assert "ReadWritePaths=/sys/devices" in (ROOT / "systemd" / "power-cycle.conf").read_text()


def test_shipped_udev_rules_are_generated_from_spsdk():
    generated = subprocess.run(
        [GANGD, "udev-rules", "--family", "mimxrt1020"], capture_output=True, text=True, check=True
    )
    assert (ROOT / "systemd" / "70-gangd.rules").read_text() == generated.stdout
    assert 'ATTRS{idVendor}=="1fc9", ATTRS{idProduct}=="0130", GROUP="gangd", MODE="0660"' in generated.stdout
    assert 'ATTRS{idVendor}=="15a2", ATTRS{idProduct}=="0073"' in generated.stdout
    bad = subprocess.run([GANGD, "udev-rules", "--family", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
