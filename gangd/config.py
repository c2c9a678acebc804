"""`gangd run --config FILE`: the station and the recipe from a TOML file.

    family = "mimxrt1020"

    [station.ports]            # USB port path = label; leave empty to take every port
    "1-1.3" = "A1"

    [flashloader]
    path = "ivt_flashloader.bin"
    load_address = 0x20000000
    jump_address = 0x20000400

    [memory]
    id = 9
    option_address = 0x2000
    options = [0xC0000007]

    [[image]]
    path = "app.bin"
    address = 0x60000000

Every mistake is reported as `FILE: key: what is wrong`. Relative paths are relative to the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .family import UnknownFamilyError, load_family
from .hotplug.udev import is_port_path
from .recipe import Image, Recipe


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    path: Path
    ports: dict[str, str | None]
    recipe: Recipe


def load_config(path: str | Path) -> Config:
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None

    def need(table: dict, key: str, kind: type, context: str):
        if key not in table:
            raise ConfigError(f"{where}: {context}{key}: missing")
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: {context}{key}: expected {kind.__name__}, got {value!r}")
        return value

    def read_file(name: str, context: str) -> bytes:
        file = (path.parent / name).resolve()
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: {context}: cannot read {file}: {exc.strerror}") from None

    try:
        family = load_family(need(raw, "family", str, ""))
    except UnknownFamilyError as exc:
        raise ConfigError(f"{where}: family: {exc}") from None
    ports = raw.get("station", {}).get("ports", {})
    for port, label in ports.items():
        if not is_port_path(port):
            raise ConfigError(f"{where}: station.ports: {port!r} is not a USB port path like \"1-1.3\"")
        if not isinstance(label, str):
            raise ConfigError(f"{where}: station.ports.{port}: the label must be a string")
    loader = need(raw, "flashloader", dict, "")
    memory = need(raw, "memory", dict, "")
    images_raw = need(raw, "image", list, "")
    images = []
    for n, entry in enumerate(images_raw):
        context = f"image[{n}]."
        data = read_file(need(entry, "path", str, context), f"image[{n}].path")
        images.append(Image(need(entry, "address", int, context), data))
    recipe = Recipe(
        family=family,
        flashloader=read_file(need(loader, "path", str, "flashloader."), "flashloader.path"),
        flashloader_address=need(loader, "load_address", int, "flashloader."),
        jump_address=need(loader, "jump_address", int, "flashloader."),
        memory_id=need(memory, "id", int, "memory."),
        option_address=need(memory, "option_address", int, "memory."),
        option_words=tuple(need(memory, "options", list, "memory.")),
        images=tuple(images),
    )
    return Config(path=path, ports=dict(ports), recipe=recipe)
