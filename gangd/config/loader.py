"""The station and its recipe from a TOML file, validated before any board is touched.

Every mistake is one message `FILE:LINE: key: what is wrong` (the line where the key or its table
stands), raised as ConfigError; `gangd check-config` and `gangd run` print it and exit with 2.
Relative paths are relative to the configuration file. See config/rt1020.toml for a full example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsdk.mboot.memories import MemId

from gangd.config.bootimage import flashloader_problem
from gangd.config.family import FamilyInfo, MemoryRegion, UnknownFamilyError, load_family
from gangd.config.flexspi import FCFB_TAG
from gangd.config.images import FORMATS, ImageError, guess_format, load_segments
from gangd.config.recipe import (
    BOARD_DATA_ENCODINGS,
    BOARD_DATA_SOURCES,
    FUSE_POLICIES,
    MARGINAL_POLICIES,
    SECTOR,
    BoardData,
    Deadlines,
    FusePlan,
    FuseWord,
    Image,
    Recipe,
    RecoveryPolicy,
    TraceSettings,
)
from gangd.config.secure_boot import parse_secure_boot
from gangd.core.bus import DEFAULT_BUDGET
from gangd.io.udev import is_port_path
from gangd.service.http import DEFAULT_ADDRESS, parse_address

INTERNAL_FLASH, FLEXSPI_NOR = 0, 9
# Memory ids of the MCU bootloader (blhost's configure-memory / spsdk's MemoryId). Internal flash
# and FlexSPI NOR are provisioned and simulated; the others are planned with the option words the
# configuration gives, and only real boards (or a simulator refusing them) answer them.
MEMORY_IDS = {member.tag: member.description for member in MemId}
FINAL_ACTIONS = ("reset", "leave")
TOP_LEVEL = {
    "family",
    "station",
    "flashloader",
    "memory",
    "image",
    "verify",
    "write",
    "fuses",
    "recovery",
    "final",
    "http",
    "deadlines",
    "quality",
    "board_data",
    "line",
    "usb",
    "secure_boot",
    "trace",
}


class ConfigError(ValueError):
    pass


Layout = tuple[tuple[str | None, ...], ...]  # rows of port paths as they stand on the bench; None: a gap
GAP = "."
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Config:
    path: Path
    ports: dict[str, str]
    recipe: Recipe
    http_address: str = DEFAULT_ADDRESS
    layout: Layout | None = None  # None: a grid in port order
    control_token: str | None = None  # None: the station page and API are read-only
    station_name: str = ""  # [station] name; "" resolved to the host name by load_config
    line: LineSettings | None = None  # [line]: the line's PostgreSQL database, None: this station alone
    # [usb] flashloaders_per_root_port: flashloader-stage boards one root port carries at once
    flashloaders_per_root_port: int = DEFAULT_BUDGET


@dataclass(frozen=True)
class LineSettings:
    """`[line]`: where the line's records and per-board data live. The password is never in the
    file: it comes from `password_file` or the environment variable `password_env` (default
    GANGD_LINE_PASSWORD), read when gangd connects."""

    database: str
    password_file: str | None = None
    password_env: str = "GANGD_LINE_PASSWORD"


class _Reader:
    """Typed access to the parsed TOML that knows where each key stands in the text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, dotted: str) -> int | None:
        """The line of `table.key` (`image[1].sha256`, `station.ports."1-1.3"`): the key inside
        its table (the n-th `[[table]]` for an index), else the table's header, else None."""
        names: list[str] = []
        occurrence = 0
        for quoted, bare, index in re.findall(r'"([^"]*)"|([^.\[\]"]+)|\[(\d+)\]', dotted):
            if index:
                occurrence = int(index)
            else:
                names.append(quoted or bare)
        if not names:
            return None
        table, key = ".".join(names[:-1]), names[-1]
        key_line = re.compile(r'^\s*("' + re.escape(key) + '"|' + re.escape(key) + r")\s*=")
        current, header_line = "", None
        seen: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
            if header:
                current = re.sub(r"\s+", "", header.group(1)).replace('"', "")
                seen[current] = seen.get(current, -1) + 1
                if current == table and seen[current] == occurrence:
                    header_line = number
                if current == ".".join(names) and header_line is None:
                    header_line = number  # the key is itself a table: [fuses]
                continue
            if current == table and seen.get(current, 0) == occurrence and key_line.match(line):
                return number
        return header_line

    def error(self, dotted: str, message: str) -> ConfigError:
        line = self.line_of(dotted)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {dotted}: {message}")

    def get(self, table: dict, key: str, kind: type | tuple[type, ...], dotted: str, default: Any = ...):
        if key not in table:
            if default is ...:
                raise self.error(dotted, "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(dotted, f"expected {names}, got {value!r}")
        return value

    def unknown_keys(self, table: dict, allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def file(self, name: str, dotted: str) -> Path:
        path = (self.path.parent / name).resolve()
        if not path.is_file():
            raise self.error(dotted, f"no such file: {path}")
        return path


def load_config(path: str | Path, need_flashloader: bool = True) -> Config:
    """Read and validate a configuration. `need_flashloader=False` (for `gangd plan`, whose output
    does not depend on the flashloader's bytes) accepts a flashloader file that is not there yet."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise ConfigError(
            f"{path}:{line}: not valid TOML: {exc}" if line else f"{path}: not valid TOML: {exc}"
        ) from None
    r = _Reader(path, text)
    r.unknown_keys(raw, TOP_LEVEL, "")

    try:
        family = load_family(r.get(raw, "family", str, "family"))
    except UnknownFamilyError as exc:
        raise r.error("family", str(exc)) from None

    ports = _ports(r, raw)
    if family.rom_protocol not in ("sdp", "mboot") or not family.rom_usb:
        raise r.error(
            "family",
            f"the ROM of {family.name} speaks neither SDP nor the MCU bootloader over USB "
            f"(spsdk's database: {family.rom_protocol or 'no ISP'})",
        )
    loader_name, loader_data, load_address, jump_address = None, b"", 0, 0
    if family.rom_protocol == "sdp" or "flashloader" in raw:
        # i.MX RT ROMs speak SDP and need a flashloader; where the ROM is itself an MCU bootloader
        # (LPC55, MCX, RT5xx/6xx) the ROM is the programmer and [flashloader] is left out.
        if family.rom_protocol != "sdp":
            raise r.error("flashloader", f"the ROM of {family.name} is an MCU bootloader: it needs no flashloader")
        loader = r.get(raw, "flashloader", dict, "flashloader")
        r.unknown_keys(loader, {"path", "load_address", "jump_address", "sha256"}, "flashloader.")
        loader_name = r.get(loader, "path", str, "flashloader.path")
        loader_file = (path.parent / loader_name).resolve()
        loader_data = (
            b""
            if not need_flashloader and not loader_file.is_file()
            else r.file(loader_name, "flashloader.path").read_bytes()
        )
        load_address = r.get(loader, "load_address", int, "flashloader.load_address")
        jump_address = r.get(loader, "jump_address", int, "flashloader.jump_address")
        if not _in_ram(family, load_address, len(loader_data)):
            raise r.error(
                "flashloader.load_address",
                f"0x{load_address:08x}..+{len(loader_data)} is not inside one RAM region of {family.name}",
            )
        if loader_data and not load_address <= jump_address < load_address + len(loader_data):
            raise r.error("flashloader.jump_address", f"0x{jump_address:08x} is not inside the loaded flashloader")
        if need_flashloader or loader_file.is_file():
            _check_flashloader(r, loader, loader_data, load_address, jump_address)

    memory = r.get(raw, "memory", dict, "memory")
    r.unknown_keys(memory, {"id", "option_address", "options", "size"}, "memory.")
    memory_id = r.get(memory, "id", int, "memory.id")
    if memory_id not in MEMORY_IDS:
        known = ", ".join(f"{k} {v}" for k, v in sorted(MEMORY_IDS.items()))
        raise r.error("memory.id", f"{memory_id} is not a memory id of the MCU bootloader (spsdk's MemId: {known})")
    if memory_id == INTERNAL_FLASH and family.internal_flash is None:
        raise r.error("memory.id", f"{family.name} has no internal flash in spsdk's memory map")
    option_address, options = 0, []
    if memory_id != INTERNAL_FLASH:  # internal flash needs no configure-memory
        option_address = r.get(memory, "option_address", int, "memory.option_address")
        options = r.get(memory, "options", list, "memory.options")
        if not options or not all(
            isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 0xFFFFFFFF for w in options
        ):
            raise r.error("memory.options", "expected a non-empty list of 32-bit words")
        if memory_id == FLEXSPI_NOR and options[0] >> 28 != 0xC and options[0] != FCFB_TAG:
            raise r.error("memory.options", f"option word 0x{options[0]:08x} lacks the 0xC tag in bits 31:28")
        if not _in_ram(family, option_address, 4 * len(options)):
            raise r.error("memory.option_address", f"0x{option_address:08x} is not in RAM")
        if _overlaps(option_address, 4 * len(options), load_address, len(loader_data)):
            raise r.error("memory.option_address", "overlaps the flashloader in RAM")

    flash = _flash(r, memory, family, memory_id)
    images = _images(r, raw, family, memory_id, flash)

    verify = r.get(raw, "verify", dict, "verify", {})
    r.unknown_keys(verify, {"read_back"}, "verify.")
    final = r.get(raw, "final", dict, "final", {})
    r.unknown_keys(final, {"action", "wait_reboot"}, "final.")
    write = r.get(raw, "write", dict, "write", {})
    r.unknown_keys(write, {"blank_check", "skip_blank_pages"}, "write.")
    action = r.get(final, "action", str, "final.action", "reset")
    if action not in FINAL_ACTIONS:
        raise r.error("final.action", f"{action!r} is not one of {', '.join(FINAL_ACTIONS)}")

    quality = r.get(raw, "quality", dict, "quality", {})
    r.unknown_keys(quality, {"marginal"}, "quality.")
    marginal = r.get(quality, "marginal", str, "quality.marginal", "accept")
    if marginal not in MARGINAL_POLICIES:
        raise r.error("quality.marginal", f"{marginal!r} is not one of {', '.join(MARGINAL_POLICIES)}")

    fuses = _fuses(r, raw, family)
    board_data = _board_data(r, raw, family, images, fuses, memory_id, flash)
    secure_boot = parse_secure_boot(r, raw, family, images, fuses, loader_data, loader_name, load_address)

    recipe = Recipe(
        family=family,
        flashloader=loader_data,
        flashloader_path=loader_name,
        flashloader_address=load_address,
        jump_address=jump_address,
        memory_id=memory_id,
        option_address=option_address,
        option_words=tuple(options),
        images=images,
        verify=r.get(verify, "read_back", bool, "verify.read_back", True),
        final_action=action,
        blank_check=r.get(write, "blank_check", bool, "write.blank_check", True),
        skip_blank_pages=r.get(write, "skip_blank_pages", bool, "write.skip_blank_pages", True),
        wait_reboot=r.get(final, "wait_reboot", bool, "final.wait_reboot", False),
        quality_marginal=marginal,
        fuses=fuses,
        board_data=board_data,
        recovery=_recovery(r, raw),
        deadlines=_deadlines(r, raw),
        secure_boot=secure_boot,
        trace=_trace(r, raw),
    )
    http = r.get(raw, "http", dict, "http", {})
    r.unknown_keys(http, {"address", "control_token"}, "http.")
    address = r.get(http, "address", str, "http.address", DEFAULT_ADDRESS)
    try:
        parse_address(address)
    except ValueError as exc:
        raise r.error("http.address", str(exc)) from None
    token = r.get(http, "control_token", str, "http.control_token", None)
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token):
        raise r.error(
            "http.control_token",
            f"must be at least {MIN_TOKEN_LENGTH} printable characters without "
            "spaces (make one with: openssl rand -hex 16)",
        )
    layout = _layout(r, raw, ports)
    return Config(
        path=path,
        ports=ports,
        recipe=recipe,
        http_address=address,
        layout=layout,
        control_token=token,
        station_name=_station_name(r, raw),
        line=_line(r, raw),
        flashloaders_per_root_port=_usb_budget(r, raw),
    )


def default_station_name() -> str:
    """A station's name when [station] name is not set (or there is no configuration: --simulate)."""
    return socket.gethostname()


def _station_name(r: _Reader, raw: dict) -> str:
    station = raw.get("station", {})
    name = r.get(station, "name", str, "station.name", "") or default_station_name()
    if not name.isprintable() or len(name) > 64:
        raise r.error("station.name", "must be at most 64 printable characters")
    return name


MAX_FLASHLOADERS_PER_ROOT_PORT = 32


def _usb_budget(r: _Reader, raw: dict) -> int:
    """`[usb] flashloaders_per_root_port`: about 8 flashloaders (two 1016-byte interrupt endpoints
    each) fill a high-speed root port's periodic bandwidth (docs/FLASHLOADER.md, "USB"); a host
    controller that reserves differently may take fewer or more. gangd never admits more."""
    usb = r.get(raw, "usb", dict, "usb", {})
    r.unknown_keys(usb, {"flashloaders_per_root_port"}, "usb.")
    budget = r.get(usb, "flashloaders_per_root_port", int, "usb.flashloaders_per_root_port", DEFAULT_BUDGET)
    if isinstance(budget, bool) or not 1 <= budget <= MAX_FLASHLOADERS_PER_ROOT_PORT:
        raise r.error(
            "usb.flashloaders_per_root_port",
            f"{budget!r} is not a whole number from 1 to {MAX_FLASHLOADERS_PER_ROOT_PORT} "
            f"(about {DEFAULT_BUDGET} fit one high-speed root port)",
        )
    return budget


def _line(r: _Reader, raw: dict) -> LineSettings | None:
    line = r.get(raw, "line", dict, "line", None)
    if line is None:
        return None
    r.unknown_keys(line, {"database", "password_file", "password_env"}, "line.")
    database = r.get(line, "database", str, "line.database")
    try:
        parts = urllib.parse.urlsplit(database)
    except ValueError as exc:
        raise r.error("line.database", str(exc)) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise r.error("line.database", 'must be a URL like "postgresql://gangd@db.example:5432/line"')
    if parts.password is not None or "password=" in parts.query:
        raise r.error(
            "line.database", "must not hold the password: put it in line.password_file or GANGD_LINE_PASSWORD"
        )
    password_file = r.get(line, "password_file", str, "line.password_file", None)
    if password_file is not None:
        password_file = str(r.file(password_file, "line.password_file"))
    env = r.get(line, "password_env", str, "line.password_env", "GANGD_LINE_PASSWORD")
    return LineSettings(database, password_file, env)


def _check_pin(r: _Reader, table: dict, dotted: str, name: str, data: bytes) -> None:
    """A `sha256 = "..."` pin: the file must be exactly the one the line engineer approved."""
    pin = r.get(table, "sha256", str, dotted, None)
    if pin is None:
        return
    if not re.fullmatch(r"[0-9a-fA-F]{64}", pin):
        raise r.error(dotted, "expected 64 hexadecimal digits")
    actual = hashlib.sha256(data).hexdigest()
    if actual != pin.lower():
        raise r.error(dotted, f"{name} has sha256 {actual}, the pin says {pin.lower()}")


def _check_flashloader(r: _Reader, loader: dict, data: bytes, load_address: int, jump_address: int) -> None:
    """The flashloader file is the one pinned and an i.MX RT boot image the ROM will jump to:
    otherwise every board would wait out replug_s for a flashloader that never enumerates."""
    _check_pin(r, loader, "flashloader.sha256", Path(loader["path"]).name, data)
    problem = flashloader_problem(data, load_address, jump_address)
    if problem:
        raise r.error("flashloader.path", f"{problem} (the ROM would not start this flashloader)")


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _in_ram(family: FamilyInfo, address: int, length: int) -> bool:
    return any(region.contains(address, max(length, 1)) for region in family.ram_regions)


def _overlaps(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a < b + b_len and b < a + a_len


def _ports(r: _Reader, raw: dict) -> dict[str, str]:
    station = r.get(raw, "station", dict, "station", {})
    r.unknown_keys(station, {"ports", "layout", "name"}, "station.")
    ports = r.get(station, "ports", dict, "station.ports", {})
    labels: dict[str, str] = {}
    for port, label in ports.items():
        if not is_port_path(port):
            raise r.error(f'station.ports."{port}"', f'{port!r} is not a USB port path like "1-1.3"')
        if not isinstance(label, str) or not label:
            raise r.error(f'station.ports."{port}"', "the label must be a non-empty string")
        if label in labels.values():
            raise r.error(f'station.ports."{port}"', f"label {label!r} is used twice")
        labels[port] = label
    return labels


def _layout(r: _Reader, raw: dict, ports: dict[str, str]) -> Layout | None:
    rows = raw.get("station", {}).get("layout")
    if rows is None:
        return None
    if not ports:
        raise r.error("station.layout", "a layout needs the ports it places: list them in [station.ports]")
    if not isinstance(rows, list) or not rows:
        raise r.error("station.layout", 'expected rows of labels, e.g. ["A1 A2 A3 A4", "B1 B2 B3 B4"]')
    try:
        return resolve_layout(rows, ports)
    except ValueError as exc:
        raise r.error("station.layout", str(exc)) from None


def resolve_layout(rows: list, ports: dict[str, str]) -> Layout:
    """Rows of labels or port paths (each row a list, or one string of names separated by spaces;
    "." leaves a gap) as rows of port paths. Every port is placed exactly once."""
    by_name = {**{label: path for path, label in ports.items()}, **{path: path for path in ports}}
    placed: dict[str, str] = {}
    resolved = []
    for number, row in enumerate(rows, start=1):
        names = row.split() if isinstance(row, str) else row
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"row {number}: expected a list of labels or a string of labels separated by spaces")
        paths: list[str | None] = []
        for name in names:
            if name in (GAP, ""):
                paths.append(None)
                continue
            if name not in by_name:
                raise ValueError(
                    f"row {number}: {name!r} is not a configured port (labels: {', '.join(ports.values())})"
                )
            path = by_name[name]
            if path in placed:
                raise ValueError(f"row {number}: {name!r} is placed twice")
            placed[path] = name
            paths.append(path)
        resolved.append(tuple(paths))
    missing = [label for path, label in ports.items() if path not in placed]
    if missing:
        raise ValueError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} configured but not placed")
    return tuple(resolved)


def parse_layout_text(text: str) -> list[list[str]]:
    """`--layout "A1 A2 A3 A4 / B1 B2 B3 B4"`: rows separated by "/", names by spaces."""
    rows = [row.split() for row in text.split("/")]
    if not all(rows):
        raise ValueError(f"--layout {text!r}: an empty row (rows are separated by '/', labels by spaces)")
    return rows


def _flash(r: _Reader, memory: dict, family: FamilyInfo, memory_id: int) -> MemoryRegion | None:
    """Where images may go: the memory's window in spsdk's memory map (internal flash, the FlexSPI
    window), cut to the flash part's size when `[memory] size` gives it. The window is larger than
    any part: 256 MiB of FlexSPI on RT1020, where the simulated parts are 8 and 16 MiB
    (gangd/sim/nor_flash.py). None: a memory that is not memory-mapped, whose address space only
    the board knows."""
    window = {INTERNAL_FLASH: family.internal_flash, FLEXSPI_NOR: family.flexspi}.get(memory_id)
    size = r.get(memory, "size", int, "memory.size", None)
    if size is None:
        return window
    if size <= 0:
        raise r.error("memory.size", "must be the flash part's size in bytes, more than 0")
    if window is None:
        raise r.error(
            "memory.size", f"memory id {memory_id} is not mapped in {family.name}'s memory map: leave size out"
        )
    if size > window.size:
        raise r.error(
            "memory.size",
            f"0x{size:x} bytes do not fit {family.name}'s {window.name} window (0x{window.size:x} bytes in spsdk's memory map)",
        )
    return dataclasses.replace(window, name=f"{size}-byte flash part (memory.size)", size=size)


def _outside(family: FamilyInfo, flash: MemoryRegion | None, address: int, length: int) -> str:
    """The message for data that do not fit the flash: outside the memory map, or past the part."""
    where = f"0x{address:08x}..+{length} is outside the flash of {family.name}"
    if flash is None:
        return where
    if flash.start <= address < flash.end:
        return f"{where}: it runs 0x{address + length - flash.end:x} bytes past the end of the {flash.name} at 0x{flash.start:08x}"
    return f"{where} ({flash.name}: 0x{flash.start:08x}..0x{flash.end - 1:08x})"


def _images(r: _Reader, raw: dict, family: FamilyInfo, memory_id: int, flash: MemoryRegion | None) -> tuple[Image, ...]:
    entries = r.get(raw, "image", list, "image")
    if not entries:
        raise r.error("image", "at least one [[image]] is needed")
    images: list[tuple[int, Image]] = []
    for n, entry in enumerate(entries):
        where = f"image[{n}]."
        if not isinstance(entry, dict):
            raise r.error(f"image[{n}]", "expected a table")
        r.unknown_keys(entry, {"path", "address", "format", "sha256"}, where)
        path = r.file(r.get(entry, "path", str, where + "path"), where + "path")
        fmt = r.get(entry, "format", str, where + "format", None) or guess_format(path)
        if fmt not in FORMATS:
            raise r.error(where + "format", f"{fmt!r} is not one of {', '.join(FORMATS)} (say format = ...)")
        _check_pin(r, entry, where + "sha256", path.name, path.read_bytes())
        try:
            segments = load_segments(path, fmt, r.get(entry, "address", int, where + "address", None))
        except ImageError as exc:
            raise r.error(where + "path", str(exc)) from None
        for address, data in segments:
            if memory_id in (INTERNAL_FLASH, FLEXSPI_NOR) and (flash is None or not flash.contains(address, len(data))):
                raise r.error(where + "address", _outside(family, flash, address, len(data)))
            for other_n, other in images:
                if _overlaps(address, len(data), other.address, len(other.data)):
                    raise r.error(
                        where + "address", f"overlaps image[{other_n}] (0x{other.address:08x}..+{len(other.data)})"
                    )
            images.append((n, Image(address, data, r.get(entry, "path", str, where + "path"))))
    return tuple(image for _, image in images)


def _board_data(
    r: _Reader,
    raw: dict,
    family: FamilyInfo,
    images: tuple[Image, ...],
    fuses: FusePlan,
    memory_id: int,
    flash: MemoryRegion | None,
) -> tuple[BoardData, ...]:
    entries = r.get(raw, "board_data", list, "board_data", [])
    allowed = {"name", "source", "format", "start", "step", "file", "address", "encoding", "size", "fuse"}
    result: list[BoardData] = []
    for n, entry in enumerate(entries):
        where = f"board_data[{n}]."
        if not isinstance(entry, dict):
            raise r.error(f"board_data[{n}]", "expected a table")
        r.unknown_keys(entry, allowed, where)
        name = r.get(entry, "name", str, where + "name")
        if any(other.name == name for other in result):
            raise r.error(where + "name", f"{name!r} is used twice")
        source = r.get(entry, "source", str, where + "source")
        if source not in BOARD_DATA_SOURCES:
            raise r.error(where + "source", f"{source!r} is not one of {', '.join(BOARD_DATA_SOURCES)}")
        list_file = None
        if source == "list":
            list_file = str(r.file(r.get(entry, "file", str, where + "file"), where + "file"))
        fmt = r.get(entry, "format", str, where + "format", "{}")
        try:
            fmt.format(0)
        except (ValueError, IndexError, KeyError) as exc:
            raise r.error(where + "format", f"not a format for one number: {exc}") from None
        encoding = r.get(entry, "encoding", str, where + "encoding", "text")
        if encoding not in BOARD_DATA_ENCODINGS:
            raise r.error(where + "encoding", f"{encoding!r} is not one of {', '.join(BOARD_DATA_ENCODINGS)}")
        address = r.get(entry, "address", int, where + "address", None)
        fuse_name = r.get(entry, "fuse", str, where + "fuse", None)
        if (address is None) == (fuse_name is None):
            raise r.error(where + "name", "say where the value goes: address = ... (flash) or fuse = ... (OTP)")
        size = r.get(entry, "size", int, where + "size", 16)
        fuse = None
        if fuse_name is not None:
            if fuses.policy == "never":
                raise r.error(where + "fuse", "burning a fuse needs [fuses] policy = 'if-blank' or 'enforce'")
            try:
                word = family.fuse(fuse_name)
            except KeyError:
                raise r.error(where + "fuse", f"{family.name} has no fuse word named {fuse_name!r}") from None
            if any(w.index == word.index for w in fuses.words):
                raise r.error(where + "fuse", f"{fuse_name} is also in [fuses.values]")
            fuse = FuseWord(word.name, word.index, 0)
        else:
            assert address is not None
            if flash is None or not flash.contains(address, size):
                raise r.error(where + "address", _outside(family, flash, address, size))
            for image in images:
                # The value's sector is erased for it: it must not share a sector with an image.
                sector_start, sector_end = address // SECTOR * SECTOR, -(-(address + size) // SECTOR) * SECTOR
                if _overlaps(sector_start, sector_end - sector_start, image.address, image.erase_length):
                    raise r.error(where + "address", f"shares a 4 KiB sector with the image at 0x{image.address:08x}")
        result.append(
            BoardData(
                name,
                source,
                fmt,
                r.get(entry, "start", int, where + "start", 1),
                r.get(entry, "step", int, where + "step", 1),
                list_file,
                address,
                encoding,
                size,
                fuse,
            )
        )
    return tuple(result)


def _fuses(r: _Reader, raw: dict, family: FamilyInfo) -> FusePlan:
    table = r.get(raw, "fuses", dict, "fuses", {})
    r.unknown_keys(table, {"policy", "values"}, "fuses.")
    policy = r.get(table, "policy", str, "fuses.policy", "never")
    if policy not in FUSE_POLICIES:
        raise r.error("fuses.policy", f"{policy!r} is not one of {', '.join(FUSE_POLICIES)}")
    values = r.get(table, "values", dict, "fuses.values", {})
    if values and policy == "never":
        raise r.error(
            "fuses.policy", "fuses.values are given but the policy is 'never': say 'if-blank' or 'enforce' to burn them"
        )
    words: list[FuseWord] = []
    for name, value in values.items():
        dotted = f'fuses.values."{name}"'
        try:
            group = family.fuse_group(name)
        except KeyError:
            raise r.error(dotted, f"{family.name} has no fuse named {name!r}") from None
        if isinstance(value, str):
            try:
                value = int(value, 16 if not value.lower().startswith("0x") else 0)
            except ValueError:
                raise r.error(dotted, f"{value!r} is not a hexadecimal number") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise r.error(dotted, "expected a non-negative integer or a hex string")
        if value >> (32 * len(group)):
            raise r.error(dotted, f"value is wider than the fuse's {32 * len(group)} bits")
        for position, word in enumerate(group):  # most significant word first
            shift = 32 * (len(group) - 1 - position)
            words.append(FuseWord(word.name, word.index, (value >> shift) & 0xFFFFFFFF))
    indexes = [w.index for w in words]
    if len(indexes) != len(set(indexes)):
        raise r.error("fuses.values", "the same fuse word is named twice")
    return FusePlan(policy, tuple(words))


def _deadlines(r: _Reader, raw: dict) -> Deadlines:
    table = r.get(raw, "deadlines", dict, "deadlines", {})
    fields = {f.name: f.default for f in dataclasses.fields(Deadlines)}
    r.unknown_keys(table, set(fields), "deadlines.")
    values = {}
    for name, default in fields.items():
        value = float(r.get(table, name, (int, float), f"deadlines.{name}", default))
        if value <= 0 and name not in ("per_byte_s", "per_erase_sector_s"):
            raise r.error(f"deadlines.{name}", "must be more than 0")
        if value < 0:
            raise r.error(f"deadlines.{name}", "must not be negative")
        values[name] = value
    return Deadlines(**values)


TRACE_KEEP = ("failed", "all")
TRACE_PAYLOAD = ("full", "hash")


def _trace(r: _Reader, raw: dict) -> TraceSettings | None:
    """`[trace]`: each job's USB conversation in a pcapng file (gangd/trace). A relative `dir` is
    relative to the configuration file."""
    if "trace" not in raw:
        return None
    table = r.get(raw, "trace", dict, "trace")
    r.unknown_keys(table, {"dir", "keep", "payload", "max_mb"}, "trace.")
    directory = r.get(table, "dir", str, "trace.dir")
    keep = r.get(table, "keep", str, "trace.keep", "failed")
    if keep not in TRACE_KEEP:
        raise r.error("trace.keep", f"{keep!r} is not one of {', '.join(TRACE_KEEP)}")
    payload = r.get(table, "payload", str, "trace.payload", "full")
    if payload not in TRACE_PAYLOAD:
        raise r.error("trace.payload", f"{payload!r} is not one of {', '.join(TRACE_PAYLOAD)}")
    max_mb = r.get(table, "max_mb", (int, float), "trace.max_mb", TraceSettings.max_bytes / 2**20)
    if max_mb <= 0:
        raise r.error("trace.max_mb", "must be more than 0")
    return TraceSettings(str((r.path.parent / directory).resolve()), keep, payload, int(max_mb * 2**20))


def _recovery(r: _Reader, raw: dict) -> RecoveryPolicy:
    table = r.get(raw, "recovery", dict, "recovery", {})
    allowed = {"max_attempts", "transient_retries", "backoff_s", "backoff_max_s", "suspect_after", "power_cycle"}
    r.unknown_keys(table, allowed, "recovery.")
    default = RecoveryPolicy()
    policy = RecoveryPolicy(
        max_attempts=r.get(table, "max_attempts", int, "recovery.max_attempts", default.max_attempts),
        transient_retries=r.get(
            table, "transient_retries", int, "recovery.transient_retries", default.transient_retries
        ),
        backoff_s=float(r.get(table, "backoff_s", (int, float), "recovery.backoff_s", default.backoff_s)),
        backoff_max_s=float(
            r.get(table, "backoff_max_s", (int, float), "recovery.backoff_max_s", default.backoff_max_s)
        ),
        suspect_after=r.get(table, "suspect_after", int, "recovery.suspect_after", default.suspect_after),
        power_cycle=r.get(table, "power_cycle", bool, "recovery.power_cycle", default.power_cycle),
    )
    for key in ("max_attempts", "suspect_after"):
        if getattr(policy, key) < 1:
            raise r.error(f"recovery.{key}", "must be at least 1")
    if policy.transient_retries < 0 or policy.backoff_s < 0 or policy.backoff_max_s < 0:
        raise r.error("recovery", "retries and backoff must not be negative")
    return policy
