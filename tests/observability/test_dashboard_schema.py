"""dashboards/*.json are dashboards a real Grafana loads: each is valid against Grafana's dashboard
JSON model (tests/data/grafana/dashboard.schema.json, made from the npm package @grafana/schema by
scripts/grafana-dashboard-schema), and every variable a panel or query names, its datasource
included, is one the dashboard defines (or one of Grafana's own, `$__interval` and the like)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
SCHEMA = json.loads((ROOT / "tests" / "data" / "grafana" / "dashboard.schema.json").read_text())
# $name, ${name}, ${name:format} and the old [[name]] (Grafana's variable syntax); names starting
# with "__" are Grafana's global variables ($__interval, $__all, $__rate_interval, ...).
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def step(path: str, key: str | int) -> str:
    """A JSON path as the messages write it: `panels[0].gridPos.h`."""
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from walk(child, step(path, key))


def problems(dashboard: dict[str, Any]) -> list[str]:
    """What a Grafana would refuse or leave broken in this dashboard, each with its JSON path."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    found = []
    for error in validator.iter_errors(dashboard):
        where = ""
        for key in error.absolute_path:
            where = step(where, key)
        found.append(f"{where}: {error.message}")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    for path, node in walk(dashboard):
        if isinstance(node, str):
            for match in VARIABLE.finditer(node):
                name = next(group for group in match.groups() if group)
                if not name.startswith("__") and name not in variables:
                    found.append(f"{path}: ${name} is not a variable of this dashboard")
        if path.endswith(".datasource") and isinstance(node, dict) and isinstance(node.get("uid"), str):
            match = VARIABLE.fullmatch(node["uid"])
            variable = variables.get(next((g for g in match.groups() if g), "")) if match else None
            if match and (variable is None or variable.get("type") != "datasource"):
                found.append(f"{path}: uid {node['uid']} is not a datasource variable")
            elif variable is not None and node.get("type") not in (None, variable.get("query")):
                found.append(f"{path}: a {node.get('type')} query on a {variable.get('query')} datasource variable")
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_each_dashboard_is_valid_and_its_variables_resolve(path):
    assert DASHBOARDS
    assert problems(json.loads(path.read_text())) == []


def broken(change) -> dict[str, Any]:
    dashboard = copy.deepcopy(json.loads((ROOT / "dashboards" / "gangd.json").read_text()))
    change(dashboard["panels"][0])
    return dashboard


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda panel: panel["gridPos"].pop("h"), "panels[0]: "),
        (lambda panel: panel["gridPos"].update(w="12"), "panels[0]: "),
        (lambda panel: panel.pop("type"), "panels[0]: "),
        (lambda panel: panel.update(datasource="Prometheus"), "panels[0]: "),
        (lambda panel: panel.update(titel=panel["title"]), "panels[0]: "),
        (
            lambda panel: panel["datasource"].update(uid="${prometheus}"),
            "panels[0].datasource: uid ${prometheus} is not",
        ),
        (lambda panel: panel["targets"][0].update(expr='gangd_boards_total{port=~"$port"}'), "$port is not a variable"),
        (lambda panel: panel["datasource"].update(type="loki"), "a loki query on a prometheus datasource variable"),
    ],
    ids=[
        "no height",
        "width a string",
        "no type",
        "datasource by name",
        "unknown key",
        "unknown datasource variable",
        "unknown variable",
        "datasource of another type",
    ],
)
def test_a_broken_panel_is_found(change, fragment):
    found = problems(broken(change))
    assert any(fragment in problem for problem in found), found
