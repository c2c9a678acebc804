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


# The floors, lowest first: a package may import only the floors below it (a module's own package
# aside), never one above. `sim` stands beside them: it may import the kernel and the configuration,
# and only the simulation wiring (SIM_WIRING) imports it. ARCHITECTURE.md draws the same picture.
FLOORS = ("core", "config", "io", "trace", "engine", "station", "service", "cli")
BESIDE = {"sim": {"core", "config", "trace"}}


def runtime_imports(path: Path) -> set[str]:
    """The gangd modules `path` imports when it runs: at module level or inside functions, but not
    under `if TYPE_CHECKING:` (a type only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.startswith("gangd.")}


def package_of(relative: Path) -> str:
    return relative.parts[1].removesuffix(".py") if len(relative.parts) > 2 else ""


def test_each_floor_imports_only_the_floors_below_it():
    offenders = {}
    for path in sorted((ROOT / "gangd").rglob("*.py")):
        relative = path.relative_to(ROOT)
        package = package_of(relative)
        if package in FLOORS:
            allowed = set(FLOORS[: FLOORS.index(package)]) | ({"sim"} if relative in SIM_WIRING else set())
        elif package in BESIDE:
            allowed = BESIDE[package]
        else:  # gangd/__init__.py, gangd/__main__.py
            allowed = set(FLOORS)
        wrong = sorted(
            module
            for module in runtime_imports(path)
            if (target := module.split(".")[1]) != package and target not in allowed and target != "__init__"
        )
        if wrong:
            offenders[str(relative)] = wrong
    assert offenders == {}


def test_no_two_packages_import_each_other():
    edges: dict[str, set[str]] = {}
    for path in sorted((ROOT / "gangd").rglob("*.py")):
        package = package_of(path.relative_to(ROOT))
        for module in runtime_imports(path):
            target = module.split(".")[1]
            if package and target != package:
                edges.setdefault(package, set()).add(target)
    cycles = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert cycles == []


def test_the_kernel_imports_nothing_of_gangd_and_its_seams_name_no_any():
    for path in sorted((ROOT / "gangd" / "core").glob("*.py")):
        outside = sorted(m for m in runtime_imports(path) if not m.startswith("gangd.core"))
        assert outside == [], path
    for seam in ("types.py", "observer.py"):
        tree = ast.parse((ROOT / "gangd" / "core" / seam).read_text())
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        assert "Any" not in names, f"gangd/core/{seam}: a seam typed Any"
