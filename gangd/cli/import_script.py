"""`gangd import-script FILE`: an NXP Secure Provisioning tool write script as a gangd configuration.

Reads a shell or batch script (or command lines pasted from the tool's log): `blhost`/`sdphost` lines
with their connection options (`-u VID,PID`, `-p PORT`, `-t MS`, `-j`, `--`), script variables
(`set NAME=value` / `NAME=value`, used as `%NAME%`, `$NAME`, `${NAME}`), comments, line
continuations and the scripts' own error handling lines. It writes an equivalent configuration to
stdout: save it next to the script, whose file paths it keeps.

What each command becomes:
    sdphost write-file ADDR FILE        [flashloader] path, load_address
    sdphost jump-address ADDR           [flashloader] jump_address
    blhost fill-memory ADDR 4 WORD      an option word, when ADDR is where configure-memory reads them
    blhost configure-memory ID ADDR     [memory] id, option_address, options
    blhost flash-erase-region / -all    nothing: gangd erases the sectors each image covers (a comment
                                        says when the script erased more)
    blhost write-memory ADDR FILE       [[image]] path, address
    blhost read-memory ...              [verify] read_back = true
    blhost efuse-program-once IDX VAL   a fuse value, commented out under policy "never": a person
                                        switches burning on
    efuse-program-once 0x18..0x1f VAL   the SRK hash: a [secure_boot] section (gangd derives the words
    efuse-program-once 0x06 00000002    from the signed image's CSF); closing the part: close = "never"
                                        there, until a proof passed on one board
    blhost efuse-read-once, get-property, set-property: noted, not replayed
    blhost reset                        [final] action = "reset" (else "leave")
A line it cannot map is a located error (`FILE:LINE: command: reason`, exit 2).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from gangd.config import files
from gangd.config.family import UsbIds, family_names, isp_usb_ids, load_family


class ScriptError(Exception):
    """A script line gangd cannot map; the message is `FILE:LINE: command: reason`."""


@dataclass(frozen=True)
class ToolCommand:
    """One blhost/sdphost invocation from a script: its tool, connection ids and command words."""

    line: int
    tool: str  # "blhost" | "sdphost"
    ids: UsbIds | None
    words: tuple[str, ...]  # the command and its arguments, e.g. ("fill-memory", "0x2000", "4", ...)

    @property
    def command(self) -> str:
        return self.words[0] if self.words else ""


# Lines of the scripts' own plumbing, skipped: shell/batch control, echo, error checks.
_PLUMBING = re.compile(
    r"^(@?echo\b|setlocal\b|endlocal\b|if\b|exit\b|goto\b|:[^:]|cd\b|pushd\b|popd\b|set\s+-[eux]|"
    r"trap\b|pause\b|shift\b|source\b|\.\s|then\b|fi\b|else\b|\}|\{|function\b|return\b)",
    re.IGNORECASE,
)
_TOOL = re.compile(r"(?:^|[\\/])(blhost|sdphost)(?:\.exe)?$", re.IGNORECASE)
_SHELL_OPERATORS = {"||", "&&", ";", "|", "&"}
_VARIABLE = re.compile(r"%(\w+)%|\$\{(\w+)\}|\$(\w+)")
# Options of blhost/sdphost that take a value (spsdk's apps/blhost.py and sdphost.py).
_VALUE_OPTIONS = {
    "-u",
    "--usb",
    "-p",
    "--port",
    "-t",
    "--timeout",
    "-l",
    "--lpcusbsio",
    "-b",
    "--buspal",
    "-s",
    "--sdio",
    "--plugin",
    "-i",
    "--spi",
    "--can",
    "--i2c",
    "-n",
    "--name",
}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their continuations (`\\` in shell, `^` in batch) joined, numbered by their first line."""
    lines, pending, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.rstrip()
        if not pending:
            start = number
        if stripped.endswith(("\\", "^")) and not stripped.endswith(("\\\\", "^^")):
            pending += stripped[:-1] + " "
            continue
        lines.append((start, pending + stripped))
        pending = ""
    if pending:
        lines.append((start, pending))
    return lines


def parse_script(path: Path, text: str) -> list[ToolCommand]:
    """The blhost/sdphost commands of a script, variables expanded, in order."""
    variables: dict[str, str] = {}
    commands = []
    for number, line in _logical_lines(text):
        body = line.strip()
        if not body or body.startswith(("#", "::")) or re.match(r"^rem\b", body, re.IGNORECASE):
            continue
        assignment = re.match(r"^(?:set\s+|export\s+)?\"?(\w+)=(.*?)\"?$", body, re.IGNORECASE)
        if assignment and not _TOOL.search(body.split()[0]):
            variables[assignment.group(1)] = _expand(assignment.group(2).strip().strip('"'), variables)
            continue
        if _PLUMBING.match(body):
            continue
        command = _tool_command(path, number, _expand(body, variables))
        if command is None:
            raise ScriptError(f"{path}:{number}: {body.split()[0]}: not a blhost or sdphost command")
        commands.append(command)
    return commands


def _expand(text: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(next(g for g in m.groups() if g), m.group(0)), text)


def _tool_command(path: Path, number: int, line: str) -> ToolCommand | None:
    try:
        tokens = shlex.split(line.replace("\\", "/"), comments=False, posix=True)
    except ValueError as exc:
        raise ScriptError(f"{path}:{number}: {line.split()[0]}: cannot be split into words: {exc}") from None
    if tokens and tokens[0].lower() == "call":
        tokens = tokens[1:]
    # The scripts' error handling after a command (`|| exit 1`, `> log 2>&1`) is not part of it.
    cut = next((i for i, t in enumerate(tokens) if t in _SHELL_OPERATORS or t.startswith((">", "1>", "2>"))), None)
    tokens = tokens[:cut]
    if not tokens or not _TOOL.search(tokens[0]):
        return None
    tool = _TOOL.search(tokens[0]).group(1).lower()  # type: ignore[union-attr]
    ids, words, index = None, [], 1
    while index < len(tokens):
        token = tokens[index]
        if token == "--":
            words = tokens[index + 1 :]
            break
        if token in ("-u", "--usb") and index + 1 < len(tokens):
            vid, _, pid = tokens[index + 1].partition(",")
            try:
                ids = UsbIds(int(vid, 0), int(pid, 0))
            except ValueError:
                raise ScriptError(f"{path}:{number}: {tool}: -u {tokens[index + 1]!r} is not VID,PID") from None
        if token in _VALUE_OPTIONS:
            index += 2
            continue
        if token.startswith("-"):
            index += 1
            continue
        words = tokens[index:]
        break
    if not words:
        raise ScriptError(f"{path}:{number}: {tool}: no command on the line")
    return ToolCommand(number, tool, ids, tuple(words))


# --- from commands to a configuration -----------------------------------------------------------

KNOWN = {
    "sdphost": {"write-file", "jump-address", "error-status", "read-register"},
    "blhost": {
        "fill-memory",
        "configure-memory",
        "flash-erase-region",
        "flash-erase-all",
        "write-memory",
        "read-memory",
        "efuse-program-once",
        "efuse-read-once",
        "set-property",
        "get-property",
        "reset",
    },
}


@dataclass
class _Config:
    rom_ids: UsbIds | None = None
    loader_ids: UsbIds | None = None
    flashloader: tuple[str, int] | None = None  # (file, load address)
    jump: int | None = None
    fills: dict[int, int] = field(default_factory=dict)
    memory: tuple[int, int] | None = None
    erases: list[tuple[int, int]] = field(default_factory=list)
    images: list[tuple[str, int]] = field(default_factory=list)
    verify: bool = False
    fuses: list[tuple[int, int]] = field(default_factory=list)
    reset: bool = False
    notes: list[str] = field(default_factory=list)


def _int(path: Path, command: ToolCommand, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ScriptError(f"{path}:{command.line}: {command.command}: {text!r} is not a number") from None


def _args(path: Path, command: ToolCommand, count: int) -> tuple[str, ...]:
    if len(command.words) - 1 < count:
        raise ScriptError(f"{path}:{command.line}: {command.command}: expected {count} arguments")
    return command.words[1:]


def collect(path: Path, commands: list[ToolCommand]) -> _Config:
    c = _Config()
    for command in commands:
        name, where = command.command, f"{path}:{command.line}: {command.command}"
        if name not in KNOWN[command.tool]:
            raise ScriptError(f"{where}: {command.tool} command gangd cannot map to a configuration")
        if command.tool == "sdphost":
            c.rom_ids = c.rom_ids or command.ids
        else:
            c.loader_ids = c.loader_ids or command.ids
        if name == "write-file":
            at, file = _args(path, command, 2)[:2]
            c.flashloader = (file, _int(path, command, at))
        elif name == "jump-address":
            c.jump = _int(path, command, _args(path, command, 1)[0])
        elif name == "fill-memory":
            address, length, pattern = (_int(path, command, a) for a in _args(path, command, 3)[:3])
            if length != 4:
                raise ScriptError(f"{where}: only one 32-bit word per fill-memory is understood (got {length} bytes)")
            c.fills[address] = pattern
        elif name == "configure-memory":
            memory_id, address = (_int(path, command, a) for a in _args(path, command, 2)[:2])
            c.memory = (memory_id, address)
        elif name == "flash-erase-region":
            address, length = (_int(path, command, a) for a in _args(path, command, 2)[:2])
            c.erases.append((address, length))
        elif name == "flash-erase-all":
            c.notes.append(f"line {command.line}: flash-erase-all: gangd erases only the sectors the images cover")
        elif name == "write-memory":
            at, file = _args(path, command, 2)[:2]
            c.images.append((file, _int(path, command, at)))
        elif name == "read-memory":
            c.verify = True
        elif name == "efuse-program-once":
            index_text, value_text = _args(path, command, 2)[:2]
            # blhost's DATA is hexadecimal with or without 0x ("efuse-program-once 0x18 f7e8225d",
            # spsdk apps/blhost.py); the index is a number as usual.
            value = _int(path, command, value_text if value_text.lower().startswith("0x") else "0x" + value_text)
            c.fuses.append((_int(path, command, index_text) & 0xFFFFFF, value))
        elif name == "reset":
            c.reset = True
        else:
            c.notes.append(f"line {command.line}: {' '.join(command.words)}: not replayed by gangd")
    if c.memory is None:
        raise ScriptError(f"{path}: configure-memory: the script never configures a memory")
    if not c.images:
        raise ScriptError(f"{path}: write-memory: the script writes no image")
    return c


def _family(path: Path, c: _Config, chosen: str | None) -> tuple[str, list[str]]:
    if chosen:
        return chosen, []
    names = family_names()
    candidates = [
        n
        for n in names
        if (c.rom_ids is None or c.rom_ids in isp_usb_ids(n)[0])
        and (c.loader_ids is None or c.loader_ids in (isp_usb_ids(n)[1] or isp_usb_ids(n)[0]))
    ]
    if not candidates:
        raise ScriptError(f"{path}: -u: no family in spsdk's database has these USB ids; give --family")
    return candidates[0], candidates[1:]


def render(path: Path, c: _Config, family: str, others: list[str]) -> str:
    assert c.memory is not None  # collect() refuses a script without configure-memory
    memory_id, option_address = c.memory
    options: list[int] = []
    while option_address + 4 * len(options) in c.fills:
        options.append(c.fills[option_address + 4 * len(options)])
    out = [f"# Imported by gangd import-script from {path.name}. Check it with: gangd check-config FILE"]
    out.append(f'family = "{family}"')
    if others:
        out.append(f"# the script's USB ids also match: {', '.join(others)}")
    out += ["", "[flashloader]"]
    if c.flashloader is not None:
        out += [f'path = "{c.flashloader[0]}"', f"load_address = {c.flashloader[1]:#010x}"]
        if c.jump is not None:
            out.append(f"jump_address = {c.jump:#010x}")
    out += [
        "",
        "[memory]",
        f"id = {memory_id}",
        f"option_address = {option_address:#x}",
        f"options = [{', '.join(f'{w:#010x}' for w in options)}]",
    ]
    for file, address in c.images:
        out += ["", "[[image]]", f'path = "{file}"', f"address = {address:#010x}"]
    for address, length in c.erases:
        out.append(f"# the script erased {address:#x}+{length}; gangd erases the sectors each image covers")
    out += ["", "[verify]", f"read_back = {'true' if c.verify else 'false'}"]
    secure, fuses = _split_secure_boot(c.fuses)
    c = replace(c, fuses=fuses)
    out += ["", "[fuses]", 'policy = "never"']
    if c.fuses:
        info = load_family(family)
        out.append('# The script burns OTP fuses (irreversible). Review the values, then set policy = "if-blank"')
        out.append("# [fuses.values]")
        for index, value in c.fuses:
            name = next((f.name for f in info.fuses if f.index == index), f"fuse{index}")
            out.append(f'# "{name}" = {value:#010x}')
    if secure:
        out += _secure_boot_section(path, secure, c.images[0][0], family)
    out += ["", "[final]", f'action = "{"reset" if c.reset else "leave"}"']
    out += [f"# {note}" for note in c.notes]
    return "\n".join(out) + "\n"


SRK_WORDS = range(0x18, 0x20)  # SRK_HASH[255:224] .. [31:0] on RT10xx (spsdk fuses.json)
BOOT_CFG1, SEC_CONFIG1 = 0x06, 0x2  # closing the part: BOOT_CFG1 bit 1


def _split_secure_boot(fuses: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The script's HAB lines (the SRK words, SEC_CONFIG[1]) apart from its other fuse lines."""
    secure, rest = [], []
    for index, value in fuses:
        if index in SRK_WORDS:
            secure.append((index, value))
        elif index == BOOT_CFG1 and value & SEC_CONFIG1:
            secure.append((index, SEC_CONFIG1))
            if value & ~SEC_CONFIG1:
                rest.append((index, value & ~SEC_CONFIG1))
        else:
            rest.append((index, value))
    return secure, rest


def _secure_boot_section(path: Path, secure: list[tuple[int, int]], image: str, family: str) -> list[str]:
    """[secure_boot] for the script's HAB lines: active when the script's image is a signed HAB
    container gangd can read, else commented out (the imported file must check as it is)."""
    from gangd.config.secure_boot import HabError, parse_container

    names = {f.index: f.name for f in load_family(family).fuses}
    srk = {index: value for index, value in secure if index in SRK_WORDS}
    closes = any(index == BOOT_CFG1 for index, _ in secure)
    try:
        parse_container(files.read_bytes(path.parent / image), image)
        signed, why = True, ""
    except files.NotAFile:
        reason = files.problem(path.parent / image) or "unreadable"
        signed, why = False, f"{image}: cannot read it next to the script ({reason})"
    except HabError as exc:
        signed, why = False, str(exc)
    lines = [
        f'image = "{image}"',
        "# The script's SRK_HASH words, for comparison with the words `gangd check-config` derives:",
        *(f'# "{names.get(i, f"fuse{i}")}" = {v:#010x}' for i, v in sorted(srk.items())),
    ]
    if closes:
        lines += [
            "# The script closes the part (efuse-program-once 0x06 00000002). gangd closes only after a",
            "# proof passed on the board: check one board by hand (README, Secure boot), then say",
            '# close = "after-proof" and proof = "flashloader-hab-report".',
        ]
    lines.append('close = "never"')
    out = ["", "# The script burns the SRK hash and/or closes the part (HAB). gangd derives the SRK words"]
    out.append("# from the signed image's CSF, never typed; [flashloader] path must be signed with the same keys.")
    if signed:
        return out + ["[secure_boot]", *lines]
    out.append(f"# Not switched on: {why}")
    return out + ["# [secure_boot]", *(line if line.startswith("#") else f"# {line}" for line in lines)]


def import_script(path: Path, family: str | None = None) -> str:
    try:
        text = files.read_bytes(path).decode(errors="replace")
    except files.NotAFile as exc:
        raise ScriptError(str(exc)) from None
    config = collect(path, parse_script(path, text))
    name, others = _family(path, config, family)
    return render(path, config, name, others)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-script", help="turn a Secure Provisioning tool write script into a configuration"
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--family", help="spsdk family name (default: the first whose USB ids the script uses)")
    parser.set_defaults(func=import_script_command)


def import_script_command(args: argparse.Namespace) -> int:
    if args.family and args.family not in family_names():
        print(f"gangd import-script: --family {args.family!r} is not in spsdk's device database", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(import_script(Path(args.file), args.family))
    except ScriptError as exc:
        print(f"gangd import-script: {exc}", file=sys.stderr)
        return 2
    return 0
