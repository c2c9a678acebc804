"""`[secure_boot]` in the configuration: SRK words derived from the signed image, never typed;
each mistake one located line from `gangd check-config`, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from spsdk.crypto.certificate import Certificate
from spsdk.image.hab.hab_srk import SrkItem, SrkTable

from gangd.config.loader import ConfigError, load_config
from tests.support import GANGD

from ..hab import make_keys, signed_flashloader
from .conftest import PROOF, write_config


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_the_srk_words_are_spsdks_export_of_the_same_certificates(tmp_path, signed_loader, signed_app, hab_keys):
    path = write_config(tmp_path, signed_loader, signed_app)
    sb = load_config(path).recipe.secure_boot
    # What `nxpcrypto rot calculate-hash -f mimxrt1020 -k SRK1_crt.pem ... -k SRK4_crt.pem` hashes:
    # the SRK table of the four certificates, as spsdk builds it from the files.
    table = SrkTable()
    for n in range(1, 5):
        table.append(SrkItem.from_certificate(Certificate.load(str(hab_keys.directory / f"SRK{n}_crt.pem"))))
    assert sb.image.srk_hash == table.export_fuses()
    assert [(w.index, w.value) for w in sb.srk] == [(0x18 + i, table.get_fuse(i)) for i in range(8)]
    assert sb.srk[0].name == "SRK_HASH[255:224]"
    result = check(path)
    assert result.returncode == 0 and table.export_fuses().hex() in result.stdout


def test_fuses_may_repeat_the_srk_hash_only_if_equal(tmp_path, signed_loader, signed_app, hab_keys):
    table = hab_keys.table
    value = "".join(f"{table.get_fuse(i):08x}" for i in range(8))  # SRK_HASH[255:224] is word 0x18
    same = f'[fuses]\npolicy = "if-blank"\n[fuses.values]\nSRK_HASH = "{value}"\n'
    assert load_config(write_config(tmp_path / "same", signed_loader, signed_app, fuses=same)).recipe.secure_boot
    other = same.replace(value, value[:-1] + ("0" if value[-1] != "0" else "1"))
    path = write_config(tmp_path / "other", signed_loader, signed_app, fuses=other)
    result = check(path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f'gangd: {path}:{line_of(path, "SRK_HASH =")}: fuses.values."SRK_HASH": ')
    assert "differs from the SRK hash of the signed image's CSF" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("secure_boot", "key", "fragment"),
    [
        ('close = "after-proof"', "close", "'after-proof' needs a proof"),
        (f'close = "sometimes"\n{PROOF}', "close", "is not one of never, after-proof"),
        ('proof = "trust-me"', "proof", "is not a known proof"),
        ('close = "never"\n[secure_boot.locks]\n"SRK_HASH[31:0]" = 1', "locks", "already burns"),
    ],
)
def test_each_mistake_is_one_located_line(tmp_path, signed_loader, signed_app, secure_boot, key, fragment):
    path = write_config(tmp_path, signed_loader, signed_app, secure_boot)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}:") and f"secure_boot.{key}" in message and fragment in message


def test_close_in_fuses_is_refused(tmp_path, signed_loader, signed_app):
    fuses = '[fuses]\npolicy = "if-blank"\n[fuses.values]\nBOOT_CFG1 = "00000002"\n'
    path = write_config(tmp_path, signed_loader, signed_app, fuses=fuses)
    with pytest.raises(ConfigError, match=r'fuses.values."BOOT_CFG1": sets SEC_CONFIG\[1\]'):
        load_config(path)


def test_an_unsigned_image_or_flashloader_is_refused(tmp_path, signed_loader, signed_app, flashloader_image):
    path = write_config(tmp_path / "image", signed_loader, b"\xff" * 0x3000)
    with pytest.raises(ConfigError, match=r"secure_boot.image: app.bin: no HAB image vector table"):
        load_config(path)
    path = write_config(tmp_path / "loader", flashloader_image, signed_app)
    with pytest.raises(
        ConfigError, match=r"flashloader.path: \[secure_boot\] needs a signed flashloader: .*without a CSF"
    ):
        load_config(path)


def test_a_flashloader_signed_with_other_keys_is_refused(tmp_path, signed_app):
    other = signed_flashloader(make_keys(tmp_path / "other-keys"))
    path = write_config(tmp_path / "config", other, signed_app)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}:{line_of(path, 'loader.bin')}: flashloader.path: signed with another SRK table" in str(error.value)
