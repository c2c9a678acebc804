"""Hostile files, property-based: any damaged configuration or image gives a ConfigError (one
located message), never a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gangd.config.images import ImageError, load_segments
from gangd.config.loader import ConfigError, load_config
from gangd.sim.images import build_flashloader_image

EXAMPLE = (Path(__file__).parents[2] / "config" / "rt1020.toml").read_text()
LINES = EXAMPLE.splitlines()
APP = bytes(range(256)) * 16


def setup_dir(directory: Path) -> None:
    (directory / "ivt_flashloader.bin").write_bytes(build_flashloader_image()[0])
    (directory / "app.bin").write_bytes(APP)


def damage(text: str, edits: list[tuple[str, int, str]]) -> str:
    lines = text.splitlines()
    for kind, where, junk in edits:
        if not lines:
            break
        i = where % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "replace-value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + junk
        elif kind == "insert":
            lines.insert(i, junk)
        elif kind == "truncate":
            lines[i] = lines[i][: len(junk) % (len(lines[i]) + 1)]
    return "\n".join(lines) + "\n"


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "duplicate", "replace-value", "insert", "truncate"]),
        st.integers(0, 10_000),
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(
                [
                    '"x"',
                    "-1",
                    "0x1FFFFFFFF",
                    "[]",
                    "{}",
                    "true",
                    '"1-1.1"',
                    '"A1"',
                    "[0xC0000007, 1]",
                    "3.5",
                    '"if-blank"',
                ]
            ),
        ),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(EDITS)
def test_damaged_config_is_a_config_error(tmp_path_factory, edits):
    directory = tmp_path_factory.mktemp("cfg")
    setup_dir(directory)
    path = directory / "line.toml"
    path.write_text(damage(EXAMPLE, edits))
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message


def srec(records: int = 8) -> str:
    lines = []
    for n in range(records):
        body = bytes([21]) + (0x6000_0000 + 16 * n).to_bytes(4, "big") + APP[16 * n : 16 * n + 16]
        lines.append("S3" + body.hex().upper() + f"{0xFF - sum(body) & 0xFF:02X}")
    return "\n".join(lines) + "\nS70500000000FA\n"


def ihex(records: int = 8) -> str:
    lines = [":020000046000" + f"{(-(2 + 4 + 0x60)) & 0xFF:02X}"]
    for n in range(records):
        body = bytes([16, 0, 16 * n, 0]) + APP[16 * n : 16 * n + 16]
        lines.append(":" + body.hex().upper() + f"{(-sum(body)) & 0xFF:02X}")
    return "\n".join(lines) + "\n:00000001FF\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["srec", "hex"]),
    st.integers(0, 400),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
)
def test_damaged_images_are_image_errors(tmp_path_factory, fmt, cut, flips):
    text = bytearray((srec() if fmt == "srec" else ihex()).encode())
    text = text[: len(text) - cut % len(text)]
    for position, value in flips:
        if text:
            text[position % len(text)] = value
    path = tmp_path_factory.mktemp("img") / f"app.{fmt}"
    path.write_bytes(bytes(text))
    try:
        segments = load_segments(path, fmt, None)
    except ImageError as exc:
        assert str(path) in str(exc)
    else:
        # What loads must be what the records say: intact data at the right addresses.
        assert all(address >= 0x6000_0000 for address, _ in segments) or flips


def test_the_undamaged_generators_are_valid(tmp_path):
    for fmt, text in (("srec", srec()), ("hex", ihex())):
        path = tmp_path / f"app.{fmt}"
        path.write_text(text)
        assert load_segments(path, fmt, None) == [(0x6000_0000, APP[:128])]
