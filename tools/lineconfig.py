"""A line's configuration file with its flashloader and image beside it, and a free loopback port
for its HTTP address: for the tests and the soak.

One writer, so the recipe the soak runs and the one the process tests run have one shape. It lives
under tools/ rather than tests/: `python -m tools.soak` is a command of the checkout and must not
depend on the test tree (which a packager may leave out), while the tests may import tools freely
(they already do for the benchmark). tests/support re-exports it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from gangd.sim.images import build_flashloader_image


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Value = bool | int | float | str | Sequence[int] | Sequence[str]


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#x}" if value >= 0x1000 else str(value)  # addresses and option words in hex
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml(item) for item in value) + "]"


def _table(name: str, values: Mapping[str, Value], header: str = "[{}]") -> list[str]:
    return [
        header.format(name),
        *(f"{json.dumps(key) if '.' in key else key} = {_toml(v)}" for key, v in values.items()),
    ]


def write_line_config(
    directory: Path,
    ports: Mapping[str, str],
    image: bytes,
    *,
    http_address: str | None = None,
    control_token: str | None = None,
    layout: Sequence[str] | None = None,
    recovery: Mapping[str, Value] | None = None,
    fuses: Mapping[str, Value] | None = None,
    fuse_policy: str = "if-blank",
    deadlines: Mapping[str, Value] | None = None,
    board_data: Sequence[Mapping[str, Value]] = (),
    usb: Mapping[str, Value] | None = None,
    name: str = "line.toml",
) -> Path:
    """`directory/name` for the mimxrt1020 on simulated ports `ports` (path -> label), with the
    simulator's flashloader as fl.bin and `image` as app.bin at the FlexSPI base. `fuses` are the
    [fuses.values] to burn under `fuse_policy`; the other tables are written as given."""
    flashloader, jump = build_flashloader_image(load_address=0x2000_0000)
    (directory / "fl.bin").write_bytes(flashloader)
    (directory / "app.bin").write_bytes(image)
    lines = ['family = "mimxrt1020"', "[station]"]
    if layout:
        lines.append(f"layout = {_toml(list(layout))}")
    lines += _table("station.ports", dict(ports))
    lines += _table("flashloader", {"path": "fl.bin", "load_address": 0x2000_0000, "jump_address": jump})
    lines += _table("memory", {"id": 9, "option_address": 0x2000, "options": [0xC000_0007]})
    lines += _table("image", {"path": "app.bin", "address": 0x6000_0000}, "[[{}]]")
    if fuses:
        lines += _table("fuses", {"policy": fuse_policy})
        lines += _table("fuses.values", fuses)
    if recovery:
        lines += _table("recovery", recovery)
    if http_address or control_token:
        http: dict[str, Value] = {"address": http_address} if http_address else {}
        if control_token:
            http["control_token"] = control_token
        lines += _table("http", http)
    if deadlines:
        lines += _table("deadlines", deadlines)
    for entry in board_data:
        lines += _table("board_data", entry, "[[{}]]")
    if usb:
        lines += _table("usb", usb)
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path
