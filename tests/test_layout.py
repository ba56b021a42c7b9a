"""The design card's import direction: flows and myomap -> warehouse -> transforms -> schemas."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

STORAGE = {"prefect", "duckdb", "s3fs", "fsspec", "great_expectations", "boto3", "botocore", "warehouse", "flows"}


def imported_roots(package: str) -> dict[str, set[str]]:
    out = {}
    for py in (REPO / package).rglob("*.py"):
        roots = set()
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        out[str(py.relative_to(REPO))] = roots
    return out


def test_transforms_import_no_storage_or_orchestration():
    bad = {f: r & STORAGE for f, r in imported_roots("transforms").items() if r & STORAGE}
    assert not bad, f"transforms/ must stay pure: {bad}"


def test_schemas_import_nothing_of_ours_but_schemas():
    bad = {f: r & (STORAGE | {"transforms"}) for f, r in imported_roots("schemas").items()
           if r & (STORAGE | {"transforms"})}
    assert not bad, bad


def test_warehouse_never_imports_flows():
    bad = {f: r & {"flows", "prefect"} for f, r in imported_roots("warehouse").items() if r & {"flows", "prefect"}}
    assert not bad, bad


def test_myomap_is_wiring_beside_flows():
    """``myomap`` (the Python API) sits where ``flows`` does: over warehouse, never under it, and never
    pulling in the orchestration (an analyst's ``import myomap`` starts no Prefect)."""
    bad = {f: r & {"myomap"} for f, r in imported_roots("warehouse").items() if r & {"myomap"}}
    bad |= {f: r & {"myomap"} for f, r in imported_roots("transforms").items() if r & {"myomap"}}
    bad |= {f: r & {"flows", "prefect"} for f, r in imported_roots("myomap").items() if r & {"flows", "prefect"}}
    assert not bad, bad
    code = "import sys, myomap; bad = sorted(k for k in sys.modules if k.split('.')[0] in ('prefect', 'flows')); " \
           "print(bad); sys.exit(1 if bad else 0)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_transforms_loads_no_storage_module():
    code = ("import sys, pkgutil, importlib, transforms\n"
            "for m in pkgutil.iter_modules(transforms.__path__): importlib.import_module('transforms.' + m.name)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in %r)\n"
            "print(bad); sys.exit(1 if bad else 0)" % (STORAGE,))
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- warehouse rooms
ROOMS = ("ingest", "analysis", "serving", "demo")
#: Which rooms each room of warehouse/ may import (settings, catalog and zones are shared by all).
ROOM_MAY_IMPORT = {"ingest": set(), "analysis": set(), "serving": {"analysis"}, "demo": set()}
PACKAGES = ("schemas", "transforms", "warehouse", "flows", "myomap")


def _module_name(py) -> str:
    parts = list(py.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, object]:
    return {_module_name(py): py for pkg in PACKAGES for py in (REPO / pkg).rglob("*.py")}


def _imports(py, known: set[str]) -> set[str]:
    """Our modules that ``py`` imports anywhere in its body (function-level imports count)."""
    out = set()
    for node in ast.walk(ast.parse(py.read_text(), str(py))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import mod` imports the submodule pkg.mod
                out.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module)
    return {m for m in out if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(py, set(mods)) for m, py in mods.items()}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "warehouse" and parts[1] in ROOMS else None


def test_warehouse_rooms_import_only_what_their_docstring_allows():
    bad = []
    for mod, deps in _graph().items():
        room = _room(mod)
        if room is None:
            continue
        for dep in deps:
            other = _room(dep)
            if other and other != room and other not in ROOM_MAY_IMPORT[room]:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "rooms of warehouse/ import across their walls:\n" + "\n".join(sorted(bad))


def test_serving_never_imports_ingest():
    bad = [f"{m} -> {d}" for m, deps in _graph().items() if _room(m) == "serving"
           for d in deps if _room(d) == "ingest"]
    assert not bad, bad


def test_demo_is_used_only_through_its_public_functions():
    """Outside warehouse/demo, only ``warehouse.demo`` itself (its __init__ exports) is imported."""
    bad = [f"{m} -> {d}" for m, deps in _graph().items() if _room(m) != "demo"
           for d in deps if _room(d) == "demo" and d != "warehouse.demo"]
    assert not bad, bad
    import warehouse.demo as demo
    assert demo.__all__ == ["generate_consortium"]


def test_each_room_docstring_says_what_it_owns_and_may_import():
    for room in ROOMS:
        doc = " ".join((ast.get_docstring(ast.parse((REPO / "warehouse" / room / "__init__.py").read_text()))
                        or "").split())
        assert "May import" in doc and "Never imports" in doc, f"warehouse/{room}/__init__.py docstring"


def test_no_import_cycle_between_our_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d == m or d.startswith(m + "."):  # a package importing its own submodule
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_no_module_over_600_lines_and_no_function_over_100():
    long_mods, long_funcs = [], []
    for pkg in PACKAGES:
        for py in (REPO / pkg).rglob("*.py"):
            text = py.read_text()
            if text.count("\n") > 600:
                long_mods.append(f"{py.relative_to(REPO)} ({text.count(chr(10))} lines)")
            for n in ast.walk(ast.parse(text)):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 100:
                    long_funcs.append(f"{py.relative_to(REPO)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert not long_mods and not long_funcs, long_mods + long_funcs


def test_no_test_names_an_absolute_path():
    """Tests find the fixtures through conftest (``../shared/fixtures`` beside the checkout), so that
    ``make test`` passes on a clone in any folder: no string literal names the checkout's parent or an
    absolute ``.../shared/fixtures`` path."""
    bad = []
    for py in list((REPO / "tests").glob("*.py")) + list((REPO / "bench").glob("*.py")):
        for n in ast.walk(ast.parse(py.read_text())):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("/") and (
                    n.value.startswith(str(REPO.parent)) or "shared/fixtures" in n.value):
                bad.append(f"{py.name}:{n.lineno}: {n.value}")
    assert not bad, bad
