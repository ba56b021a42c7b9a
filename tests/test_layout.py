"""The design card's import direction: flows -> warehouse, transforms -> schemas."""
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


def test_importing_transforms_loads_no_storage_module():
    code = ("import sys, pkgutil, importlib, transforms\n"
            "for m in pkgutil.iter_modules(transforms.__path__): importlib.import_module('transforms.' + m.name)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in %r)\n"
            "print(bad); sys.exit(1 if bad else 0)" % (STORAGE,))
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
