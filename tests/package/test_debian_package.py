"""The Debian package, built by scripts/package, in a clean Debian 12 root (mmdebstrap): installed
with apt, used as a line host uses it, upgraded, purged (tests/package/in_root.sh says each check).

Runs as root with mmdebstrap and the packaging tools present (scripts/setup installs them, CI runs
as root); it needs Debian's archive and PyPI. About 3 minutes: the package build (pip install of
gangd's dependencies, pip's cache helps), lintian, and a root of ~200 MB made by mmdebstrap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).parents[2]
IN_ROOT = Path(__file__).with_name("in_root.sh")
TOOLS = ("mmdebstrap", "dpkg-buildpackage", "lintian")


def host_apt_sources() -> list[str]:
    """The host's own apt sources, the archive this Debian 12 machine is set up to reach: a MIRROR
    that is a file is pasted into the root's sources list as it is (mmdebstrap(1), MIRROR), so the
    test names no archive of its own."""
    listed = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*.list")
    )
    plain = Path("/etc/apt/sources.list")
    if plain.is_file() and plain.read_text().strip():
        listed.insert(0, plain)
    return [str(path) for path in listed]


CHECKS = (
    "apt-get install",
    "postinst says the station is not started and why",
    "user gangd and /var/lib/gangd",
    "not enabled by the package",
    "gangd --version: gangd ",
    "check-config: gangd: /etc/gangd/gangd.toml:",
    "man page",
    "gangd run --simulate 2 --boards 2 as gangd: 2 boards programmed and recorded",
    "systemd-analyze verify gangd.service",
    "udev rules parse",
    "upgrade keeps the edited configuration and the journal",
    "purge removes the configuration and keeps the journal",
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in TOOLS),
    reason="needs root and " + ", ".join(TOOLS) + " (scripts/setup installs them; CI runs as root)",
)


def higher_version(deb: Path, directory: Path) -> Path:
    """The same package with a higher Debian revision: an upgrade runs the old prerm and the new
    postinst exactly as between two releases (the contents are not what the upgrade is about)."""
    tree = directory / "tree"
    subprocess.run(["dpkg-deb", "--raw-extract", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    text = control.read_text()
    version = re.search(r"^Version: (.+)-(\d+)$", text, re.M)
    assert version, text
    old, new = version.group(1) + "-" + version.group(2), version.group(1) + "-" + str(int(version.group(2)) + 1)
    control.write_text(text.replace(f"Version: {old}", f"Version: {new}"))
    out = directory / deb.name.replace(old, new)
    # gzip -1: a test fixture, built in seconds rather than xz's minute
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "--build", str(tree), str(out)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return out


def test_the_package_installs_runs_upgrades_and_purges_in_a_clean_debian(tmp_path):
    build = subprocess.run([str(ROOT / "scripts" / "package")], cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-5000:]
    assert not re.search(r"^E: ", build.stderr, re.M), "lintian: errors"
    deb = ROOT / build.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"gangd_[^_]+_[a-z0-9]+\.deb", deb.name) and deb.is_file()
    upgrade = higher_version(deb, tmp_path)

    hooks = [
        f"--customize-hook=copy-in {deb} {upgrade} {IN_ROOT} /tmp",
        f'--customize-hook=chroot "$1" sh /tmp/{IN_ROOT.name} /tmp/{deb.name} /tmp/{upgrade.name} {free_port()}',
    ]
    result = subprocess.run(
        ["mmdebstrap", "--mode=root", "--variant=apt", "--quiet", *hooks, "bookworm", "/dev/null", *host_apt_sources()],
        capture_output=True,
        text=True,
        timeout=1200,  # a guard against a hung apt, far above the ~1 minute it takes
    )
    output = result.stdout + result.stderr  # mmdebstrap passes its hooks' output on to its stderr
    print(output)
    assert result.returncode == 0 and "\nall checks passed\n" in output, output[-6000:]
    passed = [line.removeprefix("ok: ") for line in output.splitlines() if line.startswith("ok: ")]
    assert not [check for check in CHECKS if not any(p.startswith(check) for p in passed)], passed
    assert len(passed) == len(CHECKS), passed
