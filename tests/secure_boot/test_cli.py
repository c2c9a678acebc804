"""`gangd plan`, `gangd import-script` and `gangd explain` for [secure_boot]."""

from __future__ import annotations

import re
import subprocess

from tests.support import GANGD

from .conftest import write_config


def gangd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GANGD, *args], capture_output=True, text=True, timeout=60)


def test_plan_prints_the_stages_with_their_gates_and_the_derived_srk(tmp_path, signed_loader, signed_app, hab_keys):
    path = write_config(
        tmp_path,
        signed_loader,
        signed_app,
        'close = "after-proof"\nproof = "flashloader-hab-report"\n[secure_boot.locks]\nLOCKS = 0x4000',
    )
    result = gangd("plan", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    gates = [line for line in lines if line.startswith("# secure-boot ")]
    assert [g.split(":")[0] for g in gates] == [
        f"# secure-boot {stage}" for stage in ("srk", "reload", "proof", "close", "confirm", "locks")
    ]
    assert "only after the proof passed on this board in this job" in gates[3]
    programs = [re.search(r"efuse-program-once (\S+) (\S+)$", line) for line in lines]
    burned = [(int(m.group(1), 16), int(m.group(2), 16)) for m in programs if m]
    srk = [(0x18 + i, hab_keys.table.get_fuse(i)) for i in range(8)]
    assert burned == [*srk, (0x6, 0x2), (0x0, 0x4000)]  # SRK, then the close, the locks last
    proof_at = next(i for i, line in enumerate(lines) if "get-property 0xf0 0x60001000" in line)
    close_at = next(i for i, line in enumerate(lines) if "efuse-program-once 0x6 " in line)
    assert proof_at < close_at


SCRIPT = """@echo off
rem A Secure Provisioning tool HAB write script for the RT1020 (its shape)
set BLHOST_CONNECT=-u 0x15A2,0x0073
sdphost -u 0x1FC9,0x0130 -j -- write-file 0x20000000 loader.bin
sdphost -u 0x1FC9,0x0130 -j -- jump-address 0x20000400
blhost %BLHOST_CONNECT% -j -- fill-memory 0x2000 4 0xC0000007 word
blhost %BLHOST_CONNECT% -j -- configure-memory 9 0x2000
blhost %BLHOST_CONNECT% -j -- flash-erase-region 0x60000000 0x10000 0
blhost %BLHOST_CONNECT% -j -- write-memory 0x60000000 app.bin 0
{srk}
blhost %BLHOST_CONNECT% -j -- efuse-program-once 0x06 00000002
blhost %BLHOST_CONNECT% -j -- reset
"""


def test_import_script_maps_the_hab_lines_into_secure_boot_with_close_never(
    tmp_path, signed_loader, signed_app, hab_keys
):
    words = [f"{hab_keys.table.get_fuse(i):08x}" for i in range(8)]
    srk = "\n".join(f"blhost %BLHOST_CONNECT% -j -- efuse-program-once 0x{0x18 + i:X} {w}" for i, w in enumerate(words))
    script = tmp_path / "write_script.bat"
    script.write_text(SCRIPT.format(srk=srk))
    unsigned = gangd("import-script", str(script))  # the signed files are not there yet
    assert unsigned.returncode == 0 and "\n# [secure_boot]\n" in unsigned.stdout
    assert "Not switched on: app.bin: cannot read it next to the script" in unsigned.stdout
    (tmp_path / "loader.bin").write_bytes(signed_loader[0])
    (tmp_path / "app.bin").write_bytes(signed_app)
    result = gangd("import-script", str(script))
    assert result.returncode == 0, result.stderr
    config = result.stdout
    section = config.split("[secure_boot]")[1].split("\n[")[0]
    assert 'image = "app.bin"' in section and 'close = "never"' in section.splitlines()
    for i, word in enumerate(words):  # the script's words, for comparison
        assert f'" = 0x{word}' in section.splitlines()[3 + i]
    assert "# [fuses.values]" not in config  # the HAB lines went to [secure_boot], not to [fuses]
    # Next to the signed files it is a valid configuration, whose derived words are the script's.
    (tmp_path / "imported.toml").write_text(config)
    checked = gangd("check-config", str(tmp_path / "imported.toml"))
    assert checked.returncode == 0, checked.stderr
    assert f"SRK_HASH words 0x18..0x1f: {' '.join(words)}" in checked.stdout
    assert "close never" in checked.stdout


def test_explain_knows_the_roms_hab_words():
    for code, name in (("0x12343412", "HAB closed"), ("0x56787856", "HAB open"), ("0x33333333", "HAB failure")):
        result = gangd("explain", code)
        assert result.returncode == 0 and name in result.stdout.splitlines()[0]
