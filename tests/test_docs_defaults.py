"""Documented defaults match the constants they quote, so docs cannot drift from code.

Four kinds of checks, each expectation computed from the constant at test time (never a number
copied into this file): ``NAME = value`` in the docs and module docstrings; the threshold tables
and flag-code tables of docs/qc_thresholds.md; ``(default X)`` in the numpy-style parameter lists
of transforms/; and the phrases the README and docs use to quote a default in prose. Dotted names
of our modules quoted in the docs must exist.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import math
import pkgutil
import re

import pytest
from conftest import REPO

import transforms
from transforms import cocontraction, cycles, emg, gait, onsets, plausibility, profiles, qc, synergies

DOCS = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
TRANSFORMS = {m.name: importlib.import_module(f"transforms.{m.name}") for m in pkgutil.iter_modules(transforms.__path__)}
#: A number as written in the docs: unicode minus allowed, "20-450" is two numbers, not 20 and -450.
NUMBER = re.compile(r"(?<![\d.\w])[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?")


def numbers(text: str) -> list[float]:
    return [float(n.replace("−", "-")) for n in NUMBER.findall(text)]


def flat(value) -> list:
    if isinstance(value, dict):
        return [x for v in value.values() for x in flat(v)]
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in flat(v)]
    return [value]


def same_numbers(doc: list[float], value) -> bool:
    want = [float(v) for v in flat(value)]
    return len(doc) >= len(want) and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(doc, want))


def g(x: float) -> str:
    return f"{x:g}"


def sections(path) -> list[tuple[str | None, str]]:
    """(module named in the heading, text) of each ``#`` section; the module is ``transforms/<m>.py``."""
    out, module, buf = [], None, []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            out.append((module, "\n".join(buf)))
            m = re.search(r"`transforms/(\w+)\.py`", line)
            module, buf = (m.group(1) if m else (module if line.startswith("###") else None)), []
        buf.append(line)
    out.append((module, "\n".join(buf)))
    return out


def constant(name: str, module: str | None):
    """The value of constant ``name``: from ``module`` (and its ``<module>_*`` siblings) when given,
    else from the one transforms module defining it."""
    scope = [m for n, m in TRANSFORMS.items() if module and (n == module or n.startswith(module + "_"))]
    found = [getattr(m, name) for m in scope or TRANSFORMS.values() if hasattr(m, name)]
    assert found, f"{name} is quoted in the docs but no transforms module {module or ''} defines it"
    assert scope or len(found) == 1, f"{name} is defined in several modules: say which in the docs"
    return found[0]


# --------------------------------------------------------------------------- NAME = value
def assignments():
    """Every ``NAME = value`` quoted in docs/ and README (with its section's module)."""
    pat = re.compile(r"`([A-Z][A-Z0-9_]{2,})`\s*=\s*([−-]?[\d.]+(?:e[−-]?\d+)?(?:\s*[–-]\s*[\d.]+)?)"
                     r"|`([A-Z][A-Z0-9_]{2,}) = \"([^\"]+)\"`")
    for path in DOCS:
        for module, text in sections(path):
            for m in pat.finditer(text):
                yield path.name, module, m.group(1) or m.group(3), m.group(2) or m.group(4)


ASSIGNMENTS = list(assignments())


def test_the_docs_quote_defaults():
    assert len(ASSIGNMENTS) >= 15, ASSIGNMENTS  # the scan finds them (a broken regex would pass vacuously)


@pytest.mark.parametrize("doc,module,name,text", ASSIGNMENTS, ids=[f"{a[0]}:{a[2]}" for a in ASSIGNMENTS])
def test_quoted_assignment_matches_the_constant(doc, module, name, text):
    value = constant(name, module)
    if isinstance(value, str):
        assert text == value, f"{doc}: {name} = {text!r} but the code says {value!r}"
    else:
        assert same_numbers(numbers(text), value), f"{doc}: {name} = {text} but the code says {value!r}"


def docstring_values():
    """``NAME`` (value) and ``NAME = value`` / ``NAME`` = ``value`` in transforms module docstrings."""
    for name, mod in TRANSFORMS.items():
        doc = ast.get_docstring(ast.parse(inspect.getsource(mod))) or ""
        for m in re.finditer(r"``([A-Z][A-Z0-9_]+)``\s*\((?:default\s*)?([^)]*)\)", doc):
            if numbers(m.group(2)):
                yield name, m.group(1), m.group(2)
        for m in re.finditer(r"``([A-Z][A-Z0-9_]+)(?: = ([−-]?\d[\d.e−-]*(?: ?[a-zA-Z%]+)?|\"[^\"`]*\")|`` = ``(\w+))``",
                             doc):
            yield name, m.group(1), m.group(2) or m.group(3)


DOCSTRING_VALUES = list(docstring_values())


@pytest.mark.parametrize("module,name,text", DOCSTRING_VALUES, ids=[f"{a[0]}:{a[1]}" for a in DOCSTRING_VALUES])
def test_module_docstring_values_match_the_constants(module, name, text):
    value = getattr(TRANSFORMS[module], name)
    if isinstance(value, str):
        assert text.strip('"') == value, f"transforms/{module}.py docstring: {name} = {text}, code {value!r}"
    else:
        assert same_numbers(numbers(text), value), f"transforms/{module}.py docstring: {name} ({text}), code {value!r}"


def test_module_docstrings_quote_the_defaults_that_moved():
    assert ("onsets", "DEFAULT_ONSET_METHOD", onsets.DEFAULT_ONSET_METHOD) in DOCSTRING_VALUES
    assert {("qc", "EMG_BAND_HZ"), ("synergies", "TOL"), ("plausibility", "STRIDE_PERIOD_RANGE_S")} <= {
        (m, n) for m, n, _ in DOCSTRING_VALUES}


# --------------------------------------------------------------------------- qc_thresholds.md tables
def table_rows(module: str) -> list[list[str]]:
    path = REPO / "docs" / "qc_thresholds.md"
    text = "\n".join(t for m, t in sections(path) if m == module)
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if re.match(r"\|\s*`[A-Za-z_]", line)]


@pytest.mark.parametrize("module", ["qc", "plausibility"])
def test_qc_threshold_tables_match_the_constants(module):
    checked = 0
    for cells in table_rows(module):
        name = cells[0].strip("`")
        if name.isupper():
            value = constant(name, module)
            doc = numbers(cells[1])
            if name.endswith("_S") and re.search(r"\d\s*ms\b", cells[1]):
                doc = [v / 1000.0 for v in doc]
            assert same_numbers(doc, value), f"qc_thresholds.md: {name} is {cells[1]}, code {value!r}"
            checked += 1
    public = [n for n in (qc.__all__ if module == "qc" else plausibility.__all__) if n.isupper()
              and not isinstance(getattr(TRANSFORMS[module], n), dict)
              and all(isinstance(v, (int, float)) for v in flat(getattr(TRANSFORMS[module], n)))]
    documented = {c[0].strip("`") for c in table_rows(module)}
    assert checked >= 15 and not set(public) - documented, f"undocumented thresholds: {set(public) - documented}"


@pytest.mark.parametrize("module,registry", [("qc", qc.FLAG_SEVERITY), ("plausibility", plausibility.FINDING_SEVERITY)])
def test_flag_code_tables_match_the_registries(module, registry):
    rows = {c[0].strip("`"): c[1] for c in table_rows(module) if c[0].strip("`").islower() and len(c) >= 3
            and c[1] in ("ok", "info", "warn", "bad")}
    assert rows == registry


# --------------------------------------------------------------------------- (default X) in parameter lists
def documented_parameter_defaults():
    for modname, mod in TRANSFORMS.items():
        for fname, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ != mod.__name__ or fname.startswith("_"):
                continue
            doc = inspect.getdoc(fn) or ""
            for m in re.finditer(r"^(\w+) : [^\n]*\n((?:[ \t]+[^\n]*\n?)+)", doc, re.M):
                d = re.search(r"\(default (?:``\"([^\"]+)\"``|([−-]?[\d.]+(?:-[\d.]+)?))\)", " ".join(m.group(2).split()))
                if d:
                    yield modname, fname, m.group(1), d.group(1) or d.group(2)


PARAMETER_DEFAULTS = list(documented_parameter_defaults())


@pytest.mark.parametrize("module,function,param,text", PARAMETER_DEFAULTS,
                         ids=[f"{a[0]}.{a[1]}:{a[2]}" for a in PARAMETER_DEFAULTS])
def test_documented_parameter_defaults_match_the_signature(module, function, param, text):
    default = inspect.signature(getattr(TRANSFORMS[module], function)).parameters[param].default
    if isinstance(default, str):
        assert text == default
    else:
        assert same_numbers(numbers(text), default), f"{module}.{function}({param}): docs {text}, code {default!r}"


def test_parameter_default_scan_finds_the_known_ones():
    assert {("profiles", "patient_profiles", "z_threshold"), ("synergies", "extract_synergies", "vaf_threshold"),
            ("variability", "between_session_icc", "form")} <= {a[:3] for a in PARAMETER_DEFAULTS}


# --------------------------------------------------------------------------- defaults quoted in prose
def prose():
    lo, hi = emg.DEFAULT_BAND_HZ
    tkeo_lo, tkeo_hi = onsets.TKEO_BAND_HZ
    pre = g(cycles.PRE_STRIKE_WINDOW_PCT)
    return {
        "README.md": [
            f"band-pass {g(lo)}-{g(hi)} Hz (order {emg.DEFAULT_ORDER}; high edge",
            f"clipped to {g(emg.NYQUIST_FRACTION)} x Nyquist", f"{g(emg.DEFAULT_LOWPASS_HZ)} Hz zero-phase low-pass",
            f"contacts ({g(gait.FORCE_THRESHOLD_N)} N", f"normalised to {cycles.N_POINTS} points",
            f"up to {pre} % of a cycle before a strike", f"**Default: {onsets.DEFAULT_ONSET_METHOD.upper()}**",
            f"VAF >= {g(synergies.VAF_THRESHOLD * 100)} %", f"modified z > {g(profiles.ROBUST_Z_THRESHOLD)}",
            f"(< {profiles.MIN_CELL_SUBJECTS} subjects)"],
        "methods_timing.md": [
            f"{g(lo)}-{g(hi)} Hz (`DEFAULT_BAND_HZ`), order {emg.DEFAULT_ORDER} (`DEFAULT_ORDER`)",
            f"{g(emg.NYQUIST_FRACTION)} x Nyquist (`NYQUIST_FRACTION`)",
            f"Q = {g(emg.DEFAULT_NOTCH_QUALITY)} (`DEFAULT_NOTCH_QUALITY`)",
            f"low-pass {g(emg.DEFAULT_LOWPASS_HZ)} Hz (`DEFAULT_LOWPASS_HZ`)",
            f"{g(emg.DEFAULT_MOVING_RMS_WINDOW_MS)} ms (`DEFAULT_MOVING_RMS_WINDOW_MS`)",
            f"{emg.PARAMS_HASH_LENGTH}-hex sha256", f"blocks of {emg.FAST_BLOCK_CHANNELS}",
            f"k = {g(onsets.DEFAULT_K_SD)} (`DEFAULT_K_SD`), {g(onsets.DEFAULT_MIN_DURATION_MS)} ms "
            "(`DEFAULT_MIN_DURATION_MS`)",
            f"`{onsets.DEFAULT_ONSET_METHOD}` (Solnik et al. 2010; **default**, `DEFAULT_ONSET_METHOD`)",
            f"band-pass {g(tkeo_lo)}-{g(tkeo_hi)} Hz, TKEO", f"{g(onsets.TKEO_LOWPASS_HZ)} Hz low-pass; onset needs "
            f"{g(onsets.TKEO_MIN_ABOVE_MS)} of the next {g(onsets.TKEO_WINDOW_MS)} ms",
            f"k = {g(onsets.TKEO_K_SD)} (`TKEO_K_SD`)", f"k = {g(onsets.DOUBLE_THRESHOLD_K_SD)} (`DOUBLE_THRESHOLD_K_SD`)",
            f"at least {g(onsets.DOUBLE_THRESHOLD_MIN_ABOVE_MS)} ms of the next {g(onsets.DOUBLE_THRESHOLD_WINDOW_MS)} ms",
            f'(`DEFAULT_ONSET_METHOD = "{onsets.DEFAULT_ONSET_METHOD}"`',
            f">= {g(gait.FORCE_THRESHOLD_N)} N (`FORCE_THRESHOLD_N`)",
            f"< {g(gait.FORCE_THRESHOLD_N)} - {g(gait.FORCE_HYSTERESIS_N)} N (`FORCE_HYSTERESIS_N`)",
            f"gaps < {g(gait.MIN_GAP_MS)} ms merged (`MIN_GAP_MS`)",
            f"contacts < {g(gait.MIN_CONTACT_MS)} ms dropped (`MIN_CONTACT_MS`)",
            f"below {g(gait.SWING_LEVEL_FRACTION * 100)} % of the 95th force percentile, `SWING_LEVEL_FRACTION`",
            f"within {g(gait.SIDE_MAX_DISTANCE_MM)} mm wins (`SIDE_MAX_DISTANCE_MM`)",
            f"< {g(cycles.MIN_CYCLE_S)} s or > {g(cycles.MAX_CYCLE_S)} s (`MIN_CYCLE_S`, `MAX_CYCLE_S`)",
            f"{cycles.N_POINTS} points (0-100 %, `N_POINTS`)", f"0-{g(cycles.STANCE_PCT)} % (`STANCE_PCT`)",
            f"(0-{g(cycles.LOADING_RESPONSE_END_PCT)} %, `LOADING_RESPONSE_END_PCT`)",
            f"`[S_k - {g(cycles.PRE_STRIKE_WINDOW_PCT / 100)} T_k, S_{{k+1}} - {g(cycles.PRE_STRIKE_WINDOW_PCT / 100)} "
            f"T_{{k+1}})` (`PRE_STRIKE_WINDOW_PCT` = {pre} %): onsets up to {pre} % of",
            "`DEFAULT_ANTAGONIST_PAIRS` (" + ", ".join(
                "/".join(pair) for pair in cocontraction.DEFAULT_ANTAGONIST_PAIRS) + ")"],
        "methods_metrics.md": [
            f"When\n  this is above 100 %, {g(_sa_wrap())} % is subtracted (`SA_WRAP_PCT`)",
            f"`Z_THRESHOLD` = {g(profiles.Z_THRESHOLD)} and `SI_THRESHOLD_PCT` = {g(profiles.SI_THRESHOLD_PCT)} %",
            f"onset z > +{g(profiles.Z_THRESHOLD)}", f"\\|SI\\| > {g(profiles.SI_THRESHOLD_PCT)} % and \\|z\\| > "
            f"{g(profiles.Z_THRESHOLD)}"],
    }


def _sa_wrap() -> float:
    from transforms import asymmetry
    return asymmetry.SA_WRAP_PCT


@pytest.mark.parametrize("doc", ["README.md", "methods_timing.md", "methods_metrics.md"])
def test_defaults_quoted_in_prose_match_the_constants(doc):
    text = (REPO / doc if doc == "README.md" else REPO / "docs" / doc).read_text()
    flat_text = " ".join(text.split())
    missing = [p for p in prose()[doc] if " ".join(p.split()) not in flat_text]
    assert not missing, f"{doc} does not quote these defaults as the code has them: {missing}"


def test_docstrings_quote_the_pre_strike_window_and_symmetry_angle_range():
    from transforms import asymmetry
    pre = g(cycles.PRE_STRIKE_WINDOW_PCT)
    assert f"({pre} %): an onset up to {pre} % of a cycle" in cycles.__doc__
    # SA range: derived in the docs, checked here on the definition itself
    text = " ".join(asymmetry.__doc__.split())
    assert "SA lies in (-100 %, 100 %]: in [-50 %, 50 %] when R and L have the same sign" in text
    import numpy as np
    rng = np.random.default_rng(0)
    r, l_ = rng.normal(size=200_000), rng.normal(size=200_000)
    sa = asymmetry.symmetry_angle_array(r, l_)
    assert np.all((sa > -100.0) & (sa <= 100.0)) and sa.min() < -99.0 and sa.max() > 99.0
    same = np.sign(r) == np.sign(l_)
    assert np.all(np.abs(sa[same]) <= 50.0) and np.all(np.abs(sa[~same]) >= 50.0 - 1e-9)
    assert asymmetry.symmetry_angle_array(1.0, -1.0) == pytest.approx(100.0)
    assert asymmetry.symmetry_angle_array(1.0, -1.0 - 1e-9) == pytest.approx(-100.0, abs=1e-6)


# --------------------------------------------------------------------------- names the docs quote
def dotted_names():
    pat = re.compile(r"\b((?:warehouse|transforms|flows|schemas)(?:\.[a-z_][a-z0-9_]*)+)")
    for path in DOCS:
        for name in sorted(set(pat.findall(path.read_text()))):
            yield path.name, name


@pytest.mark.parametrize("doc,name", list(dotted_names()))
def test_quoted_module_paths_exist(doc, name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError:
            continue
    for attr in parts[i:]:
        assert hasattr(obj, attr), f"{doc} quotes {name}, which does not exist"
        obj = getattr(obj, attr)
