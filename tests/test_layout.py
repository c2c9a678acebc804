"""The codebase's shape holds: the product does not depend on the simulator, and the wheel carries
the product only."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The simulation wiring: the composition root of a simulated line and the `gangd sim` verb.
SIM_WIRING = {Path("gangd/service/simulated.py"), Path("gangd/cli/sim.py")}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (gangd uses absolute imports)"
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_product_module_imports_the_simulator():
    offenders = {}
    for path in sorted((ROOT / "gangd").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("gangd", "sim") or relative in SIM_WIRING:
            continue
        sim = sorted(m for m in imported_modules(path) if m == "gangd.sim" or m.startswith("gangd.sim."))
        if sim:
            offenders[str(relative)] = sim
    assert offenders == {}


def test_the_wheel_holds_the_product_only(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("gangd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"gangd"}
    assert not [n for n in names if "bench" in n or "soak" in n or "/tests/" in n or n.startswith("tools/")]
    assert "gangd/py.typed" in names and "gangd/service/web/static/station.js" in names
    assert "gangd/engine/explanations.toml" in names  # `gangd explain` and every failed record's reason read it
