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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsdk.mboot.memories import MemId

from gangd.config import files
from gangd.config.address import DEFAULT_ADDRESS, parse_address
from gangd.config.bootimage import flashloader_problem
from gangd.config.facts import all_facts
from gangd.config.family import FamilyInfo, MemoryRegion, UnknownFamilyError, load_family
from gangd.config.flexspi import FCFB_TAG
from gangd.config.geometry import FLEXSPI_NOR, INTERNAL_FLASH, Geometry, planned_geometry
from gangd.config.images import FORMATS, ImageError, guess_format, load_segments
from gangd.config.recipe import (
    BOARD_DATA_ENCODINGS,
    BOARD_DATA_SOURCES,
    FUSE_POLICIES,
    MARGINAL_POLICIES,
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
from gangd.core.bus import DEFAULT_BUDGET, is_port_path

# Memory ids of the MCU bootloader (blhost's configure-memory / spsdk's MemoryId). Internal flash
# and FlexSPI NOR are provisioned and simulated; the others are planned with the option words the
# configuration gives, and only real boards (or a simulator refusing them) answer them.
MEMORY_IDS = {member.tag: member.description for member in MemId}
FINAL_ACTIONS = ("reset", "leave")
EDIT_ME = "edit_me"  # the top-level key of an example not yet edited (see load_config)


class ConfigError(ValueError):
    pass


Layout = tuple[tuple[str | None, ...], ...]  # rows of port paths as they stand on the bench; None: a gap
GAP = "."
MIN_TOKEN_LENGTH = 16
MAX_WORKERS = 64  # a worker per root port of a 64-port station at most


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
    # [station] workers: processes running the boards' jobs, root ports shared among them (0: gangd's own)
    workers: int = 0
    # Located lines about a configuration that loads but may not do what its author meant (an
    # image outside the window the ROM boots from): printed by check-config, logged by run.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LineSettings:
    """`[line]`: where the line's records and per-board data live. The password is never in the
    file: it comes from `password_file` or the environment variable `password_env` (default
    GANGD_LINE_PASSWORD), read when gangd connects."""

    database: str
    password_file: str | None = None
    password_env: str = "GANGD_LINE_PASSWORD"


class _Reader:
    """Where each key stands in the text: the located errors. Keys are read through `Table`."""

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

    def file(self, name: str, dotted: str) -> Path:
        path = (self.path.parent / name).resolve()
        reason = files.problem(path)
        if reason is not None:
            raise self.error(dotted, f"{reason}: {path}")
        return path


_REQUIRED: Any = ...  # Table.get without a default: the key must be there


class Table:
    """One TOML table, read through one typed reader that knows the table's dotted prefix
    ("memory.", "image[1].", "" for the top level) and records every key read, so each key is
    spelled once and the keys no read asked for are the unknown ones.

    Name every key of the table first, then call `done()`, then validate: `done()` names an
    unknown key before anything else, so a misspelled key is reported as such (`readback:
    unknown key`), not as the missing key it was meant to be. `get` checks the value at once and
    holds a missing or mistyped key for `done()`; `later` checks it when called after `done()`,
    where the flow validates it, so a configuration with several mistakes names the same one first
    as when each table listed its keys (a key needed only sometimes, like [memory] options, is
    checked only then).

    A sub-table (`table`, `tables`) is checked where it is first used, not where it is named: the
    top level names all its tables at once, and a missing or mistyped table is still reported at
    the point of the flow where it is needed, after the mistakes of the tables before it."""

    def __init__(self, reader: _Reader, data: dict[str, Any] | Callable[[], dict[str, Any]], prefix: str) -> None:
        self.reader = reader
        self._data = data  # or the function that checks and returns it, on first use
        self.prefix = prefix
        self._read: dict[str, None] = {}  # in the order read
        self._problem: tuple[str, str] | None = None  # the first missing or mistyped key, for done()
        self._done = False

    @property
    def data(self) -> dict[str, Any]:
        if callable(self._data):
            self._data = self._data()
        return self._data

    def dotted(self, key: str | None = None) -> str:
        """`prefix.key`, or the table's own name for None."""
        return self.prefix.removesuffix(".") if key is None else self.prefix + key

    def error(self, key: str | None, message: str) -> ConfigError:
        """`FILE:LINE: prefix.key: message` (key None: the table itself)."""
        return self.reader.error(self.dotted(key), message)

    def _note(self, key: str) -> None:
        if self._done and key not in self._read:
            raise RuntimeError(f"{self.dotted(key)} read after done(): read every key before done()")
        self._read[key] = None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        """The value of `key` if it is a `kind`; `default` when absent (no default: required)."""
        self._note(key)
        return self._checked(key, kind, default)

    def _checked(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        problem = None
        if key not in self.data:
            if default is not _REQUIRED:
                return default
            problem = "missing"
        else:
            value = self.data[key]
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
                return value
            problem = f"expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}"
        if self._done:
            raise self.error(key, problem)
        self._problem = self._problem or (key, problem)
        return None  # done() raises before the caller validates

    def later(self, key: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Callable[[], Any]:
        """Read `key` now (it is a key of the table) but check its value when called, after done():
        for a value the flow has always checked late, so a config with several mistakes keeps
        naming the same one first."""
        self._note(key)
        return lambda: self._checked(key, kind, default)

    def value(self, key: str) -> Any:
        """The value of `key` unchecked (None when absent): the caller checks it."""
        self._note(key)
        return self.data.get(key)

    def table(self, key: str, default: dict[str, Any] | None = _REQUIRED) -> Table:
        """The sub-table `key` (an empty one when absent and default is {}), checked on first use."""
        self._note(key)
        return Table(self.reader, lambda: self._checked(key, dict, default) or {}, f"{self.prefix}{key}.")

    def optional_table(self, key: str) -> Table | None:
        """The sub-table `key`, None when absent; checked on first use."""
        self._note(key)
        return None if key not in self.data else self.table(key)

    def tables(self, key: str, default: list[Any] | None = _REQUIRED) -> Tables:
        """The array of tables `key` (`[[image]]`), checked on first use."""
        self._note(key)
        return Tables(self, key, default)

    def done(self) -> None:
        """An unknown key (one no read asked for), else the first key read that is missing or of the
        wrong type, as an error."""
        self._done = True
        for key in self.data:
            if key not in self._read:
                raise self.error(key, f"unknown key (expected one of: {', '.join(sorted(self._read))})")
        if self._problem is not None:
            raise self.error(*self._problem)


class Tables:
    """An array of tables (`[[image]]`): its length checks the array, iterating gives one Table
    per entry (prefixed `key[n].`), each checked to be a table when reached."""

    def __init__(self, parent: Table, key: str, default: list[Any] | None) -> None:
        self._parent, self._key, self._default = parent, key, default

    def _entries(self) -> list[Any]:
        return self._parent._checked(self._key, list, self._default) or []

    def __len__(self) -> int:
        return len(self._entries())

    def __iter__(self) -> Iterator[Table]:
        for n, entry in enumerate(self._entries()):
            if not isinstance(entry, dict):
                raise self._parent.error(f"{self._key}[{n}]", "expected a table")
            yield Table(self._parent.reader, entry, f"{self._parent.prefix}{self._key}[{n}].")


def load_config(path: str | Path, need_flashloader: bool = True) -> Config:
    """Read and validate a configuration. `need_flashloader=False` (for `gangd plan`, whose output
    does not depend on the flashloader's bytes) accepts a flashloader file that is not there yet."""
    path = Path(path)
    try:
        text = files.read_text(path)
    except files.NotAFile as exc:
        raise ConfigError(str(exc)) from None
    try:
        raw = tomllib.loads(text)
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise ConfigError(
            f"{path}:{line}: not valid TOML: {exc}" if line else f"{path}: not valid TOML: {exc}"
        ) from None
    r = _Reader(path, text)
    # An example installed as the station's configuration (the Debian package's /etc/gangd/gangd.toml)
    # carries `edit_me = "what to edit"`: no station starts, no check passes, on a configuration
    # nobody has made theirs. Its value says what to edit; deleting the key is part of the edit.
    if EDIT_ME in raw:
        raise r.error(EDIT_ME, f"{raw[EDIT_ME]}; then delete this {EDIT_ME} line")
    # Every top-level table, read once here: the top level's unknown keys are the tables not read.
    top = Table(r, raw, "")
    family_name = top.get("family", str)
    station = top.table("station", {})
    flashloader = top.optional_table("flashloader")
    memory = top.table("memory")
    image_tables = top.tables("image")
    verify = top.table("verify", {})
    write = top.table("write", {})
    fuses_table = top.table("fuses", {})
    recovery_table = top.table("recovery", {})
    final = top.table("final", {})
    http = top.table("http", {})
    deadlines_table = top.table("deadlines", {})
    quality = top.table("quality", {})
    board_data_tables = top.tables("board_data", [])
    line_table = top.optional_table("line")
    usb = top.table("usb", {})
    secure_boot_table = top.optional_table("secure_boot")
    trace_table = top.optional_table("trace")
    top.done()

    try:
        family = load_family(family_name)
    except UnknownFamilyError as exc:
        raise top.error("family", str(exc)) from None
    if family.facts is None:
        raise top.error("family", no_facts_message(family.name))
    warnings: list[str] = []

    ports, layout_rows, station_name, workers = _station(station)
    if family.rom_protocol not in ("sdp", "mboot") or not family.rom_usb:
        raise top.error(
            "family",
            f"the ROM of {family.name} speaks neither SDP nor the MCU bootloader over USB "
            f"(spsdk's database: {family.rom_protocol or 'no ISP'})",
        )
    loader_name, loader_data, load_address, jump_address = None, b"", 0, 0
    if family.rom_protocol == "sdp" or flashloader is not None:
        # i.MX RT ROMs speak SDP and need a flashloader; where the ROM is itself an MCU bootloader
        # (LPC55, MCX, RT5xx/6xx) the ROM is the programmer and [flashloader] is left out.
        if family.rom_protocol != "sdp":
            raise top.error("flashloader", f"the ROM of {family.name} is an MCU bootloader: it needs no flashloader")
        if flashloader is None:
            raise top.error("flashloader", "missing")
        path_of = flashloader.later("path", str)
        load_address_of = flashloader.later("load_address", int)
        jump_address_of = flashloader.later("jump_address", int)
        pin_of = flashloader.later("sha256", str, None)
        flashloader.done()
        loader_name = path_of()
        loader_file = (path.parent / loader_name).resolve()
        loader_data = (
            b""
            if not need_flashloader and not loader_file.exists()
            else r.file(loader_name, flashloader.dotted("path")).read_bytes()
        )
        load_address = load_address_of()
        jump_address = jump_address_of()
        if not _in_ram(family, load_address, len(loader_data)):
            raise flashloader.error(
                "load_address",
                f"0x{load_address:08x}..+{len(loader_data)} is not inside one RAM region of {family.name}",
            )
        if loader_data and not load_address <= jump_address < load_address + len(loader_data):
            raise flashloader.error("jump_address", f"0x{jump_address:08x} is not inside the loaded flashloader")
        if need_flashloader or loader_file.is_file():
            _check_flashloader(flashloader, pin_of(), loader_name, loader_data, load_address, jump_address)
        conventional = (family.facts.flashloader_load, family.facts.flashloader_jump)
        if conventional[0] is not None and (load_address, jump_address) != conventional:
            # A flashloader built by hand may live anywhere in RAM; NXP's is linked at one place.
            warnings.append(
                str(
                    flashloader.error(
                        "load_address",
                        f"0x{load_address:08x} (jump 0x{jump_address:08x}) is not where NXP's flashloader for "
                        f"{family.name} is linked: 0x{conventional[0]:08x} (jump 0x{conventional[1] or 0:08x}, "
                        f"{family.facts.file}); right only for a flashloader built for it",
                    )
                )
            )

    memory_id = memory.get("id", int)
    option_address_of = memory.later("option_address", int)
    options_of = memory.later("options", list)
    memory_size = memory.later("size", int, None)
    memory.done()
    if memory_id not in MEMORY_IDS:
        known = ", ".join(f"{k} {v}" for k, v in sorted(MEMORY_IDS.items()))
        raise memory.error("id", f"{memory_id} is not a memory id of the MCU bootloader (spsdk's MemId: {known})")
    if memory_id == INTERNAL_FLASH and family.internal_flash is None:
        raise memory.error("id", f"{family.name} has no internal flash in spsdk's memory map")
    option_address, options = 0, []
    if memory_id != INTERNAL_FLASH:  # internal flash needs no configure-memory
        option_address = option_address_of()
        options = options_of()
        if not options or not all(
            isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 0xFFFFFFFF for w in options
        ):
            raise memory.error("options", "expected a non-empty list of 32-bit words")
        if memory_id == FLEXSPI_NOR and options[0] >> 28 != 0xC and options[0] != FCFB_TAG:
            raise memory.error("options", f"option word 0x{options[0]:08x} lacks the 0xC tag in bits 31:28")
        if not _in_ram(family, option_address, 4 * len(options)):
            raise memory.error("option_address", f"0x{option_address:08x} is not in RAM")
        if _overlaps(option_address, 4 * len(options), load_address, len(loader_data)):
            raise memory.error("option_address", "overlaps the flashloader in RAM")

    flash = _flash(memory, memory_size(), family, memory_id)
    if not image_tables:
        raise top.error("image", "at least one [[image]] is needed")
    geometry = planned_geometry(family, memory_id)
    images = _images(image_tables, family, memory_id, flash, geometry, warnings)

    read_back = verify.later("read_back", bool, True)
    verify.done()
    action_of = final.later("action", str, "reset")
    wait_reboot = final.later("wait_reboot", bool, False)
    final.done()
    blank_check = write.later("blank_check", bool, True)
    skip_blank_pages = write.later("skip_blank_pages", bool, True)
    write.done()
    action = action_of()
    if action not in FINAL_ACTIONS:
        raise final.error("action", f"{action!r} is not one of {', '.join(FINAL_ACTIONS)}")

    marginal = quality.get("marginal", str, "accept")
    quality.done()
    if marginal not in MARGINAL_POLICIES:
        raise quality.error("marginal", f"{marginal!r} is not one of {', '.join(MARGINAL_POLICIES)}")

    fuses = _fuses(fuses_table, family)
    board_data = _board_data(board_data_tables, family, images, fuses, memory_id, flash)
    if secure_boot_table is not None and not family.facts.secure_boot_modelled:
        raise top.error(
            "secure_boot",
            f"not supported for {family.name} yet: its secure boot ({family.facts.secure_boot}, "
            f"{family.facts.file}) is not modelled by gangd, which closes HAB4 parts of the RT10xx fuse map only",
        )
    secure_boot = parse_secure_boot(
        secure_boot_table, fuses_table, family, images, fuses, loader_data, loader_name, load_address
    )

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
        verify=read_back(),
        final_action=action,
        blank_check=blank_check(),
        skip_blank_pages=skip_blank_pages(),
        wait_reboot=wait_reboot(),
        quality_marginal=marginal,
        fuses=fuses,
        board_data=board_data,
        recovery=_recovery(recovery_table),
        deadlines=_deadlines(deadlines_table),
        secure_boot=secure_boot,
        geometry=geometry,
        trace=_trace(trace_table),
    )
    address_of = http.later("address", str, DEFAULT_ADDRESS)
    token_of = http.later("control_token", str, None)
    http.done()
    address = address_of()
    try:
        parse_address(address)
    except ValueError as exc:
        raise http.error("address", str(exc)) from None
    token = token_of()
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token):
        raise http.error(
            "control_token",
            f"must be at least {MIN_TOKEN_LENGTH} printable characters without "
            "spaces (make one with: openssl rand -hex 16)",
        )
    layout = _layout(station, layout_rows, ports)
    return Config(
        path=path,
        ports=ports,
        recipe=recipe,
        http_address=address,
        layout=layout,
        control_token=token,
        station_name=_station_name(station, station_name()),
        line=_line(line_table),
        flashloaders_per_root_port=_usb_budget(usb),
        workers=workers(),
        warnings=tuple(warnings),
    )


def default_station_name() -> str:
    """A station's name when [station] name is not set (or there is no configuration: --simulate)."""
    return socket.gethostname()


def _station_name(station: Table, name: str) -> str:
    name = name or default_station_name()
    if not name.isprintable() or len(name) > 64:
        raise station.error("name", "must be at most 64 printable characters")
    return name


MAX_FLASHLOADERS_PER_ROOT_PORT = 32


def _usb_budget(usb: Table) -> int:
    """`[usb] flashloaders_per_root_port`: about 8 flashloaders (two 1016-byte interrupt endpoints
    each) fill a high-speed root port's periodic bandwidth (docs/FLASHLOADER.md, "USB"); a host
    controller that reserves differently may take fewer or more. gangd never admits more."""
    budget = usb.get("flashloaders_per_root_port", int, DEFAULT_BUDGET)
    usb.done()
    if isinstance(budget, bool) or not 1 <= budget <= MAX_FLASHLOADERS_PER_ROOT_PORT:
        raise usb.error(
            "flashloaders_per_root_port",
            f"{budget!r} is not a whole number from 1 to {MAX_FLASHLOADERS_PER_ROOT_PORT} "
            f"(about {DEFAULT_BUDGET} fit one high-speed root port)",
        )
    return int(budget)


def _line(line: Table | None) -> LineSettings | None:
    if line is None:
        return None
    database_of = line.later("database", str)
    password_file_of = line.later("password_file", str, None)
    env_of = line.later("password_env", str, "GANGD_LINE_PASSWORD")
    line.done()
    database = database_of()
    try:
        parts = urllib.parse.urlsplit(database)
    except ValueError as exc:
        raise line.error("database", str(exc)) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise line.error("database", 'must be a URL like "postgresql://gangd@db.example:5432/line"')
    if parts.password is not None or "password=" in parts.query:
        raise line.error("database", "must not hold the password: put it in line.password_file or GANGD_LINE_PASSWORD")
    password_file = password_file_of()
    if password_file is not None:
        password_file = str(line.reader.file(password_file, line.dotted("password_file")))
    return LineSettings(database, password_file, env_of())


def _check_pin(table: Table, pin: str | None, name: str, data: bytes) -> None:
    """A `sha256 = "..."` pin: the file must be exactly the one the line engineer approved."""
    if pin is None:
        return
    if not re.fullmatch(r"[0-9a-fA-F]{64}", pin):
        raise table.error("sha256", "expected 64 hexadecimal digits")
    actual = hashlib.sha256(data).hexdigest()
    if actual != pin.lower():
        raise table.error("sha256", f"{name} has sha256 {actual}, the pin says {pin.lower()}")


def _check_flashloader(
    loader: Table, pin: str | None, loader_name: str, data: bytes, load_address: int, jump_address: int
) -> None:
    """The flashloader file is the one pinned and an i.MX RT boot image the ROM will jump to:
    otherwise every board would wait out replug_s for a flashloader that never enumerates."""
    _check_pin(loader, pin, Path(loader_name).name, data)
    problem = flashloader_problem(data, load_address, jump_address)
    if problem:
        raise loader.error("path", f"{problem} (the ROM would not start this flashloader)")


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _in_ram(family: FamilyInfo, address: int, length: int) -> bool:
    return any(region.contains(address, max(length, 1)) for region in family.ram_regions)


def _overlaps(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a < b + b_len and b < a + a_len


def _station(station: Table) -> tuple[dict[str, str], Any, Callable[[], str], Callable[[], int]]:
    """[station]: the ports and their labels (checked), the layout's rows, the name (checked later)
    and the number of worker processes (checked when asked for)."""
    ports = station.get("ports", dict, {})
    rows = station.value("layout")  # checked by _layout
    name = station.later("name", str, "")  # checked where the name is resolved, last
    workers_of = station.later("workers", int, 0)
    station.done()

    def workers() -> int:
        count = workers_of()
        if not 0 <= count <= MAX_WORKERS:
            raise station.error(
                "workers",
                f"must be 0 (the jobs in gangd's own process) to {MAX_WORKERS}; "
                "one per CPU core is the most that helps",
            )
        return count

    labels: dict[str, str] = {}
    for port, label in ports.items():
        dotted = f'ports."{port}"'
        if not is_port_path(port):
            raise station.error(dotted, f'{port!r} is not a USB port path like "1-1.3"')
        if not isinstance(label, str) or not label:
            raise station.error(dotted, "the label must be a non-empty string")
        if label in labels.values():
            raise station.error(dotted, f"label {label!r} is used twice")
        labels[port] = label
    return labels, rows, name, workers


def _layout(station: Table, rows: Any, ports: dict[str, str]) -> Layout | None:
    if rows is None:
        return None
    if not ports:
        raise station.error("layout", "a layout needs the ports it places: list them in [station.ports]")
    if not isinstance(rows, list) or not rows:
        raise station.error("layout", 'expected rows of labels, e.g. ["A1 A2 A3 A4", "B1 B2 B3 B4"]')
    try:
        return resolve_layout(rows, ports)
    except ValueError as exc:
        raise station.error("layout", str(exc)) from None


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


def _flash(memory: Table, size: int | None, family: FamilyInfo, memory_id: int) -> MemoryRegion | None:
    """Where images may go: the memory's window (internal flash in spsdk's memory map; the FlexSPI
    window the ROM boots from, from the family's facts), cut to the flash part's size when `[memory] size` gives it. The window is larger than
    any part: 256 MiB of FlexSPI on RT1020, where the simulated parts are 8 and 16 MiB
    (gangd/sim/nor_flash.py). None: a memory that is not memory-mapped, whose address space only
    the board knows."""
    window = {INTERNAL_FLASH: family.internal_flash, FLEXSPI_NOR: family.flexspi}.get(memory_id)
    if size is None:
        return window
    if size <= 0:
        raise memory.error("size", "must be the flash part's size in bytes, more than 0")
    if window is None:
        raise memory.error("size", f"memory id {memory_id} is not mapped in {family.name}'s memory map: leave size out")
    if size > window.size:
        raise memory.error(
            "size",
            f"0x{size:x} bytes do not fit {family.name}'s {window.name} window (0x{window.size:x} bytes)",
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


def _erase_past_end(
    family: FamilyInfo, flash: MemoryRegion, geometry: Geometry, address: int, length: int
) -> str | None:
    """Words for an image whose erase, in whole planned sectors, runs past the flash's end: a flash
    that ends mid-sector (LPC55S16's 244 KiB in 32 KiB sectors, by our choice of its sector), where
    the board may refuse the erase of its last, partial sector. None when it ends inside the flash."""
    start, span = geometry.span(address, length)
    if start + span <= flash.end:
        return None
    return (
        f"0x{address:08x}..+{length} is erased in whole {geometry.sector_size}-byte sectors up to "
        f"0x{start + span:08x}, past the end of {family.name}'s {flash.name} at 0x{flash.end:08x} "
        f"({geometry.source}); the board may refuse "
        f"that erase unless it answers a smaller FlashSectorSize"
    )


def no_facts_message(family: str) -> str:
    """One line for a family spsdk knows and gangd has no facts for, naming what is missing."""
    known = ", ".join(sorted(all_facts()))
    return (
        f"gangd has no family facts for {family} (the FlexSPI window its ROM boots from, its FlexSPI "
        f"clock codes, its internal flash's sector and page, its secure boot): families with facts: "
        f"{known} (`gangd families`)"
    )


def _images(
    entries: Tables,
    family: FamilyInfo,
    memory_id: int,
    flash: MemoryRegion | None,
    geometry: Geometry,
    warnings: list[str],
) -> tuple[Image, ...]:
    images: list[tuple[int, Image]] = []
    for n, entry in enumerate(entries):
        name_of = entry.later("path", str)
        address_of = entry.later("address", int, None)
        format_of = entry.later("format", str, None)
        pin_of = entry.later("sha256", str, None)
        entry.done()
        name = name_of()
        path = entry.reader.file(name, entry.dotted("path"))
        fmt = format_of() or guess_format(path)
        if fmt not in FORMATS:
            raise entry.error("format", f"{fmt!r} is not one of {', '.join(FORMATS)} (say format = ...)")
        _check_pin(entry, pin_of(), path.name, path.read_bytes())
        try:
            segments = load_segments(path, fmt, address_of())
        except ImageError as exc:
            raise entry.error("path", str(exc)) from None
        for address, data in segments:
            window = family.flexspi_window_at(address, len(data)) if memory_id == FLEXSPI_NOR else None
            boot = family.flexspi
            other_window = window if window is not None and boot is not None and window.name != boot.name else None
            if other_window is not None:
                # A FlexSPI window the ROM does not boot from: programmable, but not a boot image.
                assert boot is not None
                warnings.append(
                    str(
                        entry.error(
                            "address",
                            f"0x{address:08x} is in {family.name}'s {other_window.name} window, not in "
                            f"{boot.name} at 0x{boot.start:08x}, where its ROM boots from "
                            f"({family.facts.file if family.facts else 'spsdk'})",
                        )
                    )
                )
            elif memory_id in (INTERNAL_FLASH, FLEXSPI_NOR) and (
                flash is None or not flash.contains(address, len(data))
            ):
                raise entry.error("address", _outside(family, flash, address, len(data)))
            elif memory_id == INTERNAL_FLASH and flash is not None:
                past = _erase_past_end(family, flash, geometry, address, len(data))
                if past:
                    warnings.append(str(entry.error("address", past)))
            for other_n, other in images:
                if _overlaps(address, len(data), other.address, len(other.data)):
                    raise entry.error(
                        "address", f"overlaps image[{other_n}] (0x{other.address:08x}..+{len(other.data)})"
                    )
            images.append((n, Image(address, data, name, geometry)))
    return tuple(image for _, image in images)


def _board_data(
    entries: Tables,
    family: FamilyInfo,
    images: tuple[Image, ...],
    fuses: FusePlan,
    memory_id: int,
    flash: MemoryRegion | None,
) -> tuple[BoardData, ...]:
    result: list[BoardData] = []
    for entry in entries:
        name_of = entry.later("name", str)
        source_of = entry.later("source", str)
        file_of = entry.later("file", str)  # a list's only
        format_of = entry.later("format", str, "{}")
        encoding_of = entry.later("encoding", str, "text")
        address_of = entry.later("address", int, None)
        fuse_of = entry.later("fuse", str, None)
        size_of = entry.later("size", int, 16)
        start_of = entry.later("start", int, 1)
        step_of = entry.later("step", int, 1)
        entry.done()
        name = name_of()
        if any(other.name == name for other in result):
            raise entry.error("name", f"{name!r} is used twice")
        source = source_of()
        if source not in BOARD_DATA_SOURCES:
            raise entry.error("source", f"{source!r} is not one of {', '.join(BOARD_DATA_SOURCES)}")
        list_file = None
        if source == "list":
            list_path = entry.reader.file(file_of(), entry.dotted("file"))
            try:
                files.read_text(list_path)  # read again at every allocation: it must be UTF-8 text
            except files.NotAFile as exc:
                raise entry.error("file", str(exc)) from None
            list_file = str(list_path)
        fmt = format_of()
        try:
            fmt.format(0)
        except (ValueError, IndexError, KeyError) as exc:
            raise entry.error("format", f"not a format for one number: {exc}") from None
        encoding = encoding_of()
        if encoding not in BOARD_DATA_ENCODINGS:
            raise entry.error("encoding", f"{encoding!r} is not one of {', '.join(BOARD_DATA_ENCODINGS)}")
        address = address_of()
        fuse_name = fuse_of()
        if (address is None) == (fuse_name is None):
            raise entry.error("name", "say where the value goes: address = ... (flash) or fuse = ... (OTP)")
        size = size_of()
        fuse = None
        if fuse_name is not None:
            if fuses.policy == "never":
                raise entry.error("fuse", "burning a fuse needs [fuses] policy = 'if-blank' or 'enforce'")
            try:
                word = family.fuse(fuse_name)
            except KeyError:
                raise entry.error("fuse", f"{family.name} has no fuse word named {fuse_name!r}") from None
            if any(w.index == word.index for w in fuses.words):
                raise entry.error("fuse", f"{fuse_name} is also in [fuses.values]")
            fuse = FuseWord(word.name, word.index, 0)
        else:
            assert address is not None
            if flash is None or not flash.contains(address, size):
                raise entry.error("address", _outside(family, flash, address, size))
            for image in images:
                # The value's sector is erased for it: it must not share a sector with an image.
                if _overlaps(*image.geometry.span(address, size), image.erase_start, image.erase_length):
                    sector = image.geometry.sector_size
                    raise entry.error(
                        "address", f"shares a {sector}-byte sector with the image at 0x{image.address:08x}"
                    )
        result.append(BoardData(name, source, fmt, start_of(), step_of(), list_file, address, encoding, size, fuse))
    return tuple(result)


def _fuses(table: Table, family: FamilyInfo) -> FusePlan:
    policy = table.get("policy", str, "never")
    values_of = table.later("values", dict, {})
    table.done()
    if policy not in FUSE_POLICIES:
        raise table.error("policy", f"{policy!r} is not one of {', '.join(FUSE_POLICIES)}")
    values = values_of()
    if values and policy == "never":
        raise table.error(
            "policy", "fuses.values are given but the policy is 'never': say 'if-blank' or 'enforce' to burn them"
        )
    words: list[FuseWord] = []
    for name, value in values.items():
        dotted = f'values."{name}"'
        try:
            group = family.fuse_group(name)
        except KeyError:
            raise table.error(dotted, f"{family.name} has no fuse named {name!r}") from None
        if isinstance(value, str):
            try:
                value = int(value, 16 if not value.lower().startswith("0x") else 0)
            except ValueError:
                raise table.error(dotted, f"{value!r} is not a hexadecimal number") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise table.error(dotted, "expected a non-negative integer or a hex string")
        if value >> (32 * len(group)):
            raise table.error(dotted, f"value is wider than the fuse's {32 * len(group)} bits")
        for position, word in enumerate(group):  # most significant word first
            shift = 32 * (len(group) - 1 - position)
            words.append(FuseWord(word.name, word.index, (value >> shift) & 0xFFFFFFFF))
    indexes = [w.index for w in words]
    if len(indexes) != len(set(indexes)):
        raise table.error("values", "the same fuse word is named twice")
    return FusePlan(policy, tuple(words))


def _deadlines(table: Table) -> Deadlines:
    defaults = {f.name: f.default for f in dataclasses.fields(Deadlines)}
    given = {name: table.later(name, (int, float), default) for name, default in defaults.items()}
    table.done()
    values = {}
    for name, value_of in given.items():
        value = values[name] = float(value_of())
        if value <= 0 and name not in ("per_byte_s", "per_erase_sector_s"):
            raise table.error(name, "must be more than 0")
        if value < 0:
            raise table.error(name, "must not be negative")
    return Deadlines(**values)


TRACE_KEEP = ("failed", "all")
TRACE_PAYLOAD = ("full", "hash")


def _trace(table: Table | None) -> TraceSettings | None:
    """`[trace]`: each job's USB conversation in a pcapng file (gangd/trace). A relative `dir` is
    relative to the configuration file."""
    if table is None:
        return None
    directory_of = table.later("dir", str)
    keep_of = table.later("keep", str, "failed")
    payload_of = table.later("payload", str, "full")
    max_mb_of = table.later("max_mb", (int, float), TraceSettings.max_bytes / 2**20)
    max_job_mb_of = table.later("max_job_mb", (int, float), TraceSettings.max_job_bytes / 2**20)
    table.done()
    directory = directory_of()
    keep = keep_of()
    if keep not in TRACE_KEEP:
        raise table.error("keep", f"{keep!r} is not one of {', '.join(TRACE_KEEP)}")
    payload = payload_of()
    if payload not in TRACE_PAYLOAD:
        raise table.error("payload", f"{payload!r} is not one of {', '.join(TRACE_PAYLOAD)}")
    max_mb = max_mb_of()
    if max_mb <= 0:
        raise table.error("max_mb", "must be more than 0")
    max_job_mb = max_job_mb_of()
    if max_job_mb <= 0:
        raise table.error("max_job_mb", "must be more than 0")
    return TraceSettings(
        str((table.reader.path.parent / directory).resolve()),
        keep,
        payload,
        int(max_mb * 2**20),
        int(max_job_mb * 2**20),
    )


def _recovery(table: Table) -> RecoveryPolicy:
    default = RecoveryPolicy()
    given = {
        "max_attempts": table.get("max_attempts", int, default.max_attempts),
        "transient_retries": table.get("transient_retries", int, default.transient_retries),
        "backoff_s": table.get("backoff_s", (int, float), default.backoff_s),
        "backoff_max_s": table.get("backoff_max_s", (int, float), default.backoff_max_s),
        "suspect_after": table.get("suspect_after", int, default.suspect_after),
        "power_cycle": table.get("power_cycle", bool, default.power_cycle),
    }
    table.done()
    policy = RecoveryPolicy(
        **{**given, "backoff_s": float(given["backoff_s"]), "backoff_max_s": float(given["backoff_max_s"])}
    )
    for key in ("max_attempts", "suspect_after"):
        if getattr(policy, key) < 1:
            raise table.error(key, "must be at least 1")
    if policy.transient_retries < 0 or policy.backoff_s < 0 or policy.backoff_max_s < 0:
        raise table.error(None, "retries and backoff must not be negative")
    return policy
