"""SVG figures, the HTML report, and the report in real headless Chromium."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_views_extracts import FATIGUED, SITES, TODAY, _cli, build_lake, onset_ms

from schemas.contracts import TABLES
from warehouse.serving import figures
from warehouse.serving.report import render_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return build_lake(tmp_path_factory.mktemp("report") / "lake")


@pytest.fixture(scope="module")
def page(lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    info = render_report(lake, str(out), requester_site="lyon", today=TODAY)
    return out, info


def svg_by_id(html: str, svg_id: str) -> ET.Element:
    m = re.search(rf'<svg id="{re.escape(svg_id)}".*?</svg>', html, re.S)
    assert m, f"no svg#{svg_id}"
    return ET.fromstring(m.group(0))


def marks(svg: ET.Element, layer: str) -> list[ET.Element]:
    """The mark elements of one named layer (Vega gives its group the class ``<layer>[_<view>]_marks``)."""
    return [el for g in svg.iter("g") if "role-mark" in (g.get("class") or "")
            and re.fullmatch(rf"{layer}(_\d+)?_marks", (g.get("class") or "").split()[-1]) for el in g]


def dots(svg: ET.Element) -> list[tuple[str, str, float]]:
    """(row label, series, value) of every dot, from the dots' accessible labels."""
    out = []
    for c in marks(svg, "dot"):
        label, rest = c.get("aria-label").split(" / ", 1)
        series, value = rest.rsplit(": ", 1)
        out.append((label, series, float(value)))
    return out


def rect(el: ET.Element) -> tuple[float, float]:
    """(x, width) of a Vega rect path ``M x,y h w v h h -w Z``."""
    m = re.match(r"M(-?[\d.e-]+),(-?[\d.e-]+)h(-?[\d.e-]+)", el.get("d"))
    return float(m.group(1)), float(m.group(3))


def translate_x(el: ET.Element) -> float:
    return float(re.match(r"translate\((-?[\d.e-]+),", el.get("transform")).group(1))


def hexcolour(fill: str) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in re.findall(r"\d+", fill)) if fill.startswith("rgb") else fill


def row_labels(svg: ET.Element) -> list[str]:
    """Row labels of the first panel, from its y axis' accessible description."""
    desc = next(g.get("aria-label") for g in svg.iter("g") if (g.get("aria-label") or "").startswith("Y-axis"))
    return desc.split(" values: ", 1)[1].split(", ")


def panel_titles(svg: ET.Element) -> list[str]:
    """Titles inside the concatenated views (the panels), not the figure's own title."""
    in_views = {id(g): g for view in svg.iter("g") if re.search(r"concat_\d+_group", view.get("class") or "")
                for g in view.iter("g") if "role-title-text" in (g.get("class") or "")}
    return [g.get("aria-label").removeprefix("Title text ").strip("'") for g in in_views.values()]


# --------------------------------------------------------------------------- figures
def test_heatmap_colours_missing_cells_and_marks():
    m = np.array([[0.0, 0.25, 0.5, 0.75, 1.0], [1.0, np.nan, 0.0, 0.5, 0.25]])
    svg = figures.heatmap_svg([m, m[::-1]], ["tibialis_anterior", "<soleus>"], svg_id="hm", title="t",
                              panel_titles=("Left", "Right"), x_values=[0, 25, 50, 75, 100],
                              marks=[[(50, 75), None], [None, (0, 100)]])
    root = ET.fromstring(svg)
    assert root.get("id") == "hm" and "heatmap" in root.get("class") and root.find("title").text == "t"
    assert panel_titles(root) == ["Left", "Right"]
    cells = marks(root, "cell_0")
    assert [c.get("aria-label") for c in cells[:2]] == ["tibialis_anterior at 0: 0", "tibialis_anterior at 25: 0.25"]
    assert hexcolour(cells[0].get("fill")) == "#440154" and hexcolour(cells[4].get("fill")) == "#fde725"  # viridis ends
    assert len(marks(root, "missing_0")) == 1 and len(marks(root, "missing_1")) == 1
    assert all(c.get("fill") == figures.MISSING for c in marks(root, "missing_0"))
    # the onset mark at 50 % lies inside the cell of the 50 % column, the offset in the 75 % column
    onset, = marks(root, "onset_0")
    x = sum(rect(onset)) - rect(onset)[1] / 2
    c50 = next(c for c in cells if c.get("aria-label") == "tibialis_anterior at 50: 0.5")
    assert rect(c50)[0] <= x <= sum(rect(c50))
    offs = marks(root, "offset_0")
    assert len(offs) == 1 and rect(offs[0])[0] > x
    assert len(marks(root, "onset_1")) + len(marks(root, "offset_1")) == 2
    assert "<soleus>" not in svg and "&lt;soleus&gt;" in svg
    assert not re.search(r"(?i)https?:|<script|url\(|xlink:", svg)  # inline and self-contained
    with pytest.raises(ValueError):
        figures.heatmap_svg(m, ["only one label"], svg_id="x", title="x")


def test_bar_and_dot_plots_scale_with_the_values():
    svg = figures.bar_svg(["a", "b"], {"fresh": [2.0, -1.0], "fatigued": [4.0, None]},
                          errors={"fresh": [0.5, None]}, svg_id="bars", title="bars", x_label="x")
    root = ET.fromstring(svg)
    bars = {}
    for b in marks(root, "bar"):
        series, value = b.get("aria-label").split(" / ", 1)[1].rsplit(": ", 1)
        bars[(series, float(value))] = b
    assert len(bars) == 3  # None is skipped
    w = {k: rect(b)[1] for k, b in bars.items()}
    assert w[("fatigued", 4.0)] == pytest.approx(2 * w[("fresh", 2.0)], rel=0.02)
    assert w[("fresh", -1.0)] == pytest.approx(0.5 * w[("fresh", 2.0)], rel=0.02)
    zero, = marks(root, "zero")
    assert sum(rect(bars[("fresh", -1.0)])) == pytest.approx(translate_x(zero), abs=0.2)
    err, = marks(root, "error")
    assert float(err.get("x2")) == pytest.approx(0.5 * w[("fresh", 2.0)], rel=0.02)

    svg = figures.dot_plot_svg(["r1", "r2"], {"A": [[1.0, 2.0, 3.0], None], "B": [5.0, float("nan")]},
                               intervals={"B": [(4.0, 6.0), None]}, band=(-2, 2), band_label="|z| < 2",
                               svg_id="dp", title="dots", x_label="z")
    root = ET.fromstring(svg)
    pts = sorted(dots(root), key=lambda d: d[2])
    assert [(d[1], d[2]) for d in pts] == [("A", 1.0), ("A", 2.0), ("A", 3.0), ("B", 5.0)]
    xs = {float(c.get("aria-label").rsplit(": ", 1)[1]): translate_x(c) for c in marks(root, "dot")}
    assert xs[1.0] < xs[2.0] < xs[3.0] < xs[5.0]
    assert xs[2.0] - xs[1.0] == pytest.approx(xs[3.0] - xs[2.0], rel=1e-3)  # linear axis
    band, = marks(root, "band")
    assert rect(band)[0] < xs[1.0] < sum(rect(band)) < xs[3.0]
    interval, = marks(root, "interval")
    assert translate_x(interval) < xs[5.0] < translate_x(interval) + float(interval.get("x2"))
    assert "shaded: |z| < 2" in "".join(root.itertext())


# --------------------------------------------------------------------------- report content
def test_report_sections_values_and_sharing_rules(page):
    out, info = page
    html = out.read_text()
    for sid in ("qc-files", "map-walk-fatigued", "map-walk-fresh", "onset-timing", "asymmetry-peak",
                "variability-cv", "variability-vr"):
        assert f'<svg id="{sid}"' in html, sid
    # self-contained: no scripts, no external resource or link
    assert not re.search(r"(?i)https?:|<script|<link|<img|@import|url\(|src=", html)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
    # requester lyon: boston (embargoed) never appears; tokyo (pooled_analysis) does; no inbox path
    assert "BOS0" not in html and "TOK01" in html and "Jane_Doe" not in html
    assert "boston (embargoed until 2999-01-01)" in html
    expected_subjects = sorted(SITES["lyon"][0] + SITES["tokyo"][0])
    assert re.findall(r'<section class="subject" id="subject-([a-z0-9-]+)"', html) == [s.lower()
                                                                                      for s in expected_subjects]
    assert info["subjects"] == len(expected_subjects)
    # onset timing: mean over subjects of each subject's mean onset (% cycle), per condition
    timing = dots(svg_by_id(html, "onset-timing"))
    got = {(lab, ser): v for lab, ser, v in timing}
    fresh = [s for s in expected_subjects]
    want_fresh = np.mean([np.mean([onset_ms(s, "fresh", "soleus", "R", c) / 10 for c in (0, 1)]) for s in fresh])
    want_fat = np.mean([np.mean([onset_ms(s, "fatigued", "tibialis_anterior", "L", c) / 10 for c in (0, 1)])
                        for s in sorted(FATIGUED)])
    assert got[("soleus R", "walk / fresh")] == pytest.approx(want_fresh, rel=1e-3)
    assert got[("tibialis_anterior L", "walk / fatigued")] == pytest.approx(want_fat, rel=1e-3)
    # asymmetry: one dot per subject and condition
    asym = dots(svg_by_id(html, "asymmetry-peak"))
    assert sum(1 for lab, ser, _ in asym if lab == "soleus" and ser == "walk / fresh") == len(expected_subjects)
    # activation maps: left and right panels, muscles in vocabulary order, mean onset/offset per row
    amap = svg_by_id(html, "map-walk-fresh")
    assert "activation-map" in amap.get("class")
    assert row_labels(amap) == ["tibialis_anterior", "soleus"]
    assert panel_titles(amap) == ["Left", "Right"]
    assert len(marks(amap, "onset_0")) + len(marks(amap, "onset_1")) == 4
    # subject profile: exactly one flagged value (LYO05 soleus L, delayed onset), against a reference recomputed
    # over the subjects lyon may see (boston is embargoed): the median of the 7 other visible subjects' onsets
    flagged = re.findall(r'<tr class="flagged">(.*?)</tr>', html)
    assert len(flagged) == 1 and "delayed_onset" in flagged[0] and "soleus" in flagged[0]
    others = [onset_ms(s, "fresh", "soleus", "L", 1) for s in expected_subjects if s != "LYO05"]
    cells = re.findall(r"<td>([^<]*)</td>", flagged[0])
    assert float(cells[4]) == pytest.approx(float(np.median(others)), rel=1e-3) and cells[-1] == str(len(others))
    assert 'id="profile-lyo05-lyo05-fresh"' in html
    # QC and dictionary
    assert "c3d_truncated" in html
    assert len(re.findall(r'<details id="dict-', html)) == len(TABLES)


def test_report_follows_the_cohort_filter(lake, tmp_path):
    out = tmp_path / "fat.html"
    r = CliRunner().invoke(_cli(), ["report", str(out), "--lake", lake.lake, "--cohort", "condition=fatigued; side=L"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert re.findall(r'<svg id="(map-[^"]+)"', html) == ["map-walk-fatigued"]
    amap = svg_by_id(html, "map-walk-fatigued")
    assert marks(amap, "missing_1") and not marks(amap, "cell_1")  # right side filtered out
    assert marks(amap, "cell_0") and not marks(amap, "missing_0")
    assert len(re.findall(r'<section class="subject"', html)) == len(FATIGUED)
    assert {ser for _, ser, _ in dots(svg_by_id(html, "onset-timing"))} == {"walk / fatigued"}
    r = CliRunner().invoke(_cli(), ["report", str(tmp_path / "x.html"), "--lake", lake.lake, "--cohort", "side=X'"])
    assert r.exit_code != 0 and "--cohort" in r.output and not (tmp_path / "x.html").exists()


def test_report_never_replaces_an_existing_file_without_force(lake, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("a report someone kept")
    r = CliRunner().invoke(_cli(), ["report", "--out", str(out), "--lake", lake.lake])
    assert r.exit_code == 1 and "exists: choose another --out, or add --force" in r.output, r.output
    assert out.read_text() == "a report someone kept"
    r = CliRunner().invoke(_cli(), ["report", "--out", str(out), "--lake", lake.lake, "--force"])
    assert r.exit_code == 0, r.output
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


# --------------------------------------------------------------------------- real browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed: the report test needs a real headless browser. "
                "Install the Debian package (apt-get install -y chromium), as .ci/run does.")


def run_chromium(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="myomap-chromium-") as profile:
        return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=90)


def read_png(path: Path) -> tuple[int, int, np.ndarray]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) to an array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp, raw = (3 if ctype == 2 else 4), zlib.decompress(b"".join(idat))
    stride, prev, rows = w * (3 if ctype == 2 else 4), bytearray(w * (3 if ctype == 2 else 4)), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride) if f else ():
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, np.frombuffer(b"".join(rows), np.uint8).reshape(h, w, bpp)[:, :, :3]


def test_report_loads_in_headless_chromium_with_its_figures(page, tmp_path):
    out, _ = page
    html = out.read_text()
    r = run_chromium(["--dump-dom", out.as_uri()])
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert "<h1>myomap cohort report</h1>" in dom
    for sid in ("qc-files", "map-walk-fresh", "map-walk-fatigued", "onset-timing", "asymmetry-peak",
                "variability-cv", "profile-lyo05-lyo05-fresh"):
        assert re.search(rf'<svg id="{sid}" class="figure [^"]*"', dom), sid
    assert dom.count("<svg") == html.count("<svg") >= 10
    assert len(re.findall(r'class="figure heatmap activation-map"', dom)) == 2
    shot = tmp_path / "report.png"
    r = run_chromium(["--window-size=1000,1100", f"--screenshot={shot}", out.as_uri()])
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    w, h, px = read_png(shot)
    assert (w, h) == (1000, 1100)
    flat = px.reshape(-1, 3).astype(int)
    colours = {tuple(c) for c in flat[:: 7]}
    assert len(colours) > 100, "screenshot looks blank"
    background = (np.abs(flat - 255).sum(1) < 20) | (np.abs(flat - 250).sum(1) < 12)
    assert (~background).mean() > 0.10
    # the activation maps are painted: dark purple (low) and yellow-green (high) viridis pixels
    purple = (np.abs(flat - [0x44, 0x01, 0x54]).sum(1) < 60).sum()
    yellow = (np.abs(flat - [0xfd, 0xe7, 0x25]).sum(1) < 90).sum()
    assert purple > 200 and yellow > 50, (purple, yellow)
