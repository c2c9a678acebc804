from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gangd.config.loader import load_config

from ..conftest import TEST_DEADLINES
from ..daemon.conftest import line, store  # noqa: F401 - the simulated line, for these tests too

PROOF = 'proof = "flashloader-hab-report"'


def write_config(
    directory: Path,
    loader: tuple[bytes, int],
    app: bytes,
    secure_boot: str = f'close = "after-proof"\n{PROOF}',
    fuses: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "loader.bin").write_bytes(loader[0])
    (directory / "app.bin").write_bytes(app)
    path = directory / "gangd.toml"
    path.write_text(
        f"""family = "mimxrt1020"

[flashloader]
path = "loader.bin"
load_address = 0x20000000
jump_address = 0x{loader[1]:x}

[memory]
id = 9
option_address = 0x2000
options = [0xC0000007]

[[image]]
path = "app.bin"
address = 0x60000000
{fuses}
[secure_boot]
image = "app.bin"
{secure_boot}
"""
    )
    return path


@pytest.fixture
def secure_recipe(tmp_path, signed_loader, signed_app):
    """The recipe of a [secure_boot] configuration (close after the proof), with test deadlines."""

    def make(secure_boot: str = f'close = "after-proof"\n{PROOF}', fuses: str = ""):
        path = write_config(tmp_path / "config", signed_loader, signed_app, secure_boot, fuses)
        return dataclasses.replace(load_config(path).recipe, deadlines=TEST_DEADLINES)

    return make
