"""[station] layout and [http] control_token: accepted when right, one located message when not."""

from __future__ import annotations

import pytest

from gangd.config.loader import ConfigError, load_config, parse_layout_text, resolve_layout

from .test_config import edit, line_dir  # noqa: F401 - the fixture

PORTS = {"1-1.1": "A1", "1-1.2": "A2", "1-1.3": "A3", "1-1.4": "A4"}


def test_layout_and_token(line_dir):  # noqa: F811
    edit(line_dir, '# layout = ["A1 A2", "A3 A4"]', 'layout = ["A1 A2 .", ["A3", "1-1.4"]]')
    path = edit(line_dir, '# control_token = "..."', 'control_token = "0123456789abcdef0123"')
    config = load_config(path)
    assert config.layout == (("1-1.1", "1-1.2", None), ("1-1.3", "1-1.4"))
    assert config.control_token == "0123456789abcdef0123"
    default = load_config(edit(line_dir, 'layout = ["A1 A2 .", ["A3", "1-1.4"]]', "# no layout"))
    assert default.layout is None


@pytest.mark.parametrize(
    "layout, message",
    [
        ('["A1 A2", "A3"]', "A4 is configured but not placed"),
        ('["A1 A2 A3 A4 A1"]', "row 1: 'A1' is placed twice"),
        ('["A1 A2", "A3 A4 B9"]', "row 2: 'B9' is not a configured port (labels: A1, A2, A3, A4)"),
        ('"A1 A2 A3 A4"', 'expected rows of labels, e.g. ["A1 A2 A3 A4", "B1 B2 B3 B4"]'),
        ('["A1 A2", 3]', "row 2: expected a list of labels or a string of labels separated by spaces"),
    ],
)
def test_layout_mistakes_are_located(line_dir, layout, message):  # noqa: F811
    path = edit(line_dir, '# layout = ["A1 A2", "A3 A4"]', f"layout = {layout}")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), start=1) if text.startswith("layout ="))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:{line}: station.layout: {message}"


def test_a_short_token_is_refused(line_dir):  # noqa: F811
    path = edit(line_dir, '# control_token = "..."', 'control_token = "secret"')
    line = next(n for n, text in enumerate(path.read_text().splitlines(), start=1) if text.startswith("control_token"))
    with pytest.raises(ConfigError, match=rf":{line}: http\.control_token: must be at least 16 printable"):
        load_config(path)


def test_layout_text():
    rows = parse_layout_text("A1 A2 . A3 / A4")
    assert resolve_layout(rows, PORTS) == (("1-1.1", "1-1.2", None, "1-1.3"), ("1-1.4",))
    with pytest.raises(ValueError, match="an empty row"):
        parse_layout_text("A1 A2 // A3")
