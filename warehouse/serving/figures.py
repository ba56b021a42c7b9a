"""Hand-written SVG figures (no plotting library): heatmaps, bar charts, dot plots.

Every renderer is a pure function from numbers and labels to one ``<svg>``
element (a string) with an ``id``, ``class="figure <kind>"``, a ``<title>`` and
``role="img"``, meant to be inlined in HTML (no external fonts, images or URLs).
Colours: viridis for intensities, the Okabe-Ito palette (colour-blind safe) for
series. Missing values (None / NaN) are drawn grey (heatmap) or skipped.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

#: Okabe-Ito qualitative palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
MISSING = "#dddddd"
CHAR_W = 6.4  # approximate width of one 11 px sans-serif character
FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="11"'


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x == x else "0"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


def viridis(t: float) -> str:
    """Hex colour of ``t`` in [0, 1] on the viridis scale (clipped)."""
    t = min(max(float(t), 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    w = t - i
    rgb = [round(int(a[k:k + 2], 16) * (1 - w) + int(b[k:k + 2], 16) * w) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 10))
    return ticks


def _open(svg_id: str, kind: str, width: float, height: float, title: str) -> list[str]:
    sid = escape(svg_id, quote=True)
    return [f'<svg id="{sid}" class="figure {escape(kind, quote=True)}" viewBox="0 0 {_f(width)} {_f(height)}" '
            f'width="{_f(width)}" height="{_f(height)}" role="img" aria-labelledby="{sid}-title" {FONT}>',
            f'<title id="{sid}-title">{escape(title)}</title>',
            f'<rect class="background" x="0" y="0" width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>',
            f'<text class="figure-title" x="8" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out, cx = ['<g class="legend">'], x
    for i, name in enumerate(names):
        out.append(f'<rect x="{_f(cx)}" y="{_f(y - 9)}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{_f(cx + 14)}" y="{_f(y)}">{escape(str(name))}</text>')
        cx += 24 + CHAR_W * len(str(name))
    out.append("</g>")
    return out


def _legend_width(names: Sequence[str]) -> float:
    return sum(24 + CHAR_W * len(str(n)) for n in names)


# --------------------------------------------------------------------------- heatmap
def heatmap_svg(matrices, row_labels: Sequence[str], *, svg_id: str, title: str,
                panel_titles: Sequence[str] | None = None, x_values: Sequence[float] | None = None,
                marks: Sequence[Sequence[tuple[float, float] | None]] | None = None,
                vmin: float = 0.0, vmax: float = 1.0, x_label: str = "% gait cycle",
                colorbar_label: str = "normalised envelope", cell_w: float = 3.0, cell_h: float = 16.0) -> str:
    """Heatmap(s) sharing row labels, side by side (e.g. left and right side).

    Parameters
    ----------
    matrices : array (rows x cols) or sequence of such arrays (one per panel)
        Values; NaN is drawn grey.
    row_labels : sequence of str
        One label per row (e.g. muscles).
    svg_id, title : str
        Element id and accessible title.
    panel_titles : sequence of str, optional
        One title per panel (e.g. ``("Left", "Right")``).
    x_values : sequence of float, optional
        The x value of each column, evenly spaced (default 0..cols-1, i.e. % cycle).
    marks : sequence (per panel) of sequence (per row) of (onset, offset) or None
        Drawn as a white solid line (onset) and a black dashed line (offset).
    vmin, vmax : float
        Colour scale limits (viridis).

    Returns
    -------
    str
        ``<svg class="figure heatmap">`` with one ``<g class="panel">`` per matrix.
    """
    mats = [np.asarray(matrices, float)] if np.ndim(matrices) == 2 else [np.asarray(m, float) for m in matrices]
    n_rows, n_cols = mats[0].shape
    if any(m.shape != (n_rows, n_cols) for m in mats) or len(row_labels) != n_rows:
        raise ValueError("every matrix must be rows x cols with one row label per row")
    xs = np.arange(n_cols, dtype=float) if x_values is None else np.asarray(x_values, float)
    left = 12 + CHAR_W * max([len(str(r)) for r in row_labels] + [4])
    top, gap, pw = 44.0, 28.0, n_cols * cell_w
    width = left + len(mats) * pw + (len(mats) - 1) * gap + 16
    height = top + n_rows * cell_h + 84
    span = (xs[-1] - xs[0]) or 1.0

    def xpos(panel_x: float, v: float) -> float:
        return panel_x + (v - xs[0]) / span * (n_cols - 1) * cell_w + cell_w / 2

    out = _open(svg_id, "heatmap", width, height, title)
    for p, m in enumerate(mats):
        px = left + p * (pw + gap)
        out.append(f'<g class="panel" data-panel="{p}" shape-rendering="crispEdges">')
        if panel_titles:
            out.append(f'<text class="panel-title" x="{_f(px + pw / 2)}" y="{_f(top - 8)}" text-anchor="middle" '
                       f'font-weight="bold">{escape(str(panel_titles[p]))}</text>')
        for r in range(n_rows):
            y = top + r * cell_h
            c = 0
            while c < n_cols:  # merge runs of equal colour
                v = m[r, c]
                fill = MISSING if not math.isfinite(v) else viridis((v - vmin) / ((vmax - vmin) or 1.0))
                run = 1
                while c + run < n_cols:
                    w = m[r, c + run]
                    nxt = MISSING if not math.isfinite(w) else viridis((w - vmin) / ((vmax - vmin) or 1.0))
                    if nxt != fill:
                        break
                    run += 1
                cls = "cell missing" if fill == MISSING else "cell"
                out.append(f'<rect class="{cls}" x="{_f(px + c * cell_w)}" y="{_f(y)}" width="{_f(run * cell_w)}" '
                           f'height="{_f(cell_h)}" fill="{fill}"/>')
                c += run
            mk = marks[p][r] if marks and p < len(marks) and marks[p] and r < len(marks[p]) else None
            if mk:
                on, off = mk
                if _finite(on):
                    x = xpos(px, on)
                    out.append(f'<line class="onset-mark" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y + 1)}" '
                               f'y2="{_f(y + cell_h - 1)}" stroke="#ffffff" stroke-width="2.5"/>')
                if _finite(off):
                    x = xpos(px, off)
                    out.append(f'<line class="offset-mark" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y + 1)}" '
                               f'y2="{_f(y + cell_h - 1)}" stroke="#000000" stroke-width="2" '
                               'stroke-dasharray="3 2"/>')
        base = top + n_rows * cell_h
        for t in nice_ticks(xs[0], xs[-1], 5):
            if xs[0] - 1e-9 <= t <= xs[-1] + 1e-9:
                x = xpos(px, t)
                out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(base)}" y2="{_f(base + 4)}" stroke="#333"/>'
                           f'<text x="{_f(x)}" y="{_f(base + 15)}" text-anchor="middle">{_f(t)}</text>')
        out.append(f'<text class="axis-label" x="{_f(px + pw / 2)}" y="{_f(base + 29)}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
        out.append("</g>")
    for r, label in enumerate(row_labels):
        out.append(f'<text class="row-label" x="{_f(left - 6)}" y="{_f(top + r * cell_h + cell_h * 0.7)}" '
                   f'text-anchor="end">{escape(str(label))}</text>')
    # colour bar and mark legend
    cy, cw = height - 30, 120.0
    out.append('<g class="colorbar">')
    for i in range(24):
        out.append(f'<rect x="{_f(left + i * cw / 24)}" y="{_f(cy)}" width="{_f(cw / 24 + 0.3)}" height="8" '
                   f'fill="{viridis(i / 23)}"/>')
    out.append(f'<text x="{_f(left)}" y="{_f(cy + 20)}">{_f(vmin)}</text>'
               f'<text x="{_f(left + cw)}" y="{_f(cy + 20)}" text-anchor="end">{_f(vmax)}</text>'
               f'<text x="{_f(left + cw + 8)}" y="{_f(cy + 8)}">{escape(colorbar_label)}</text></g>')
    if marks:
        lx = left + cw + 16 + CHAR_W * len(colorbar_label)
        out.append(f'<g class="mark-legend"><rect x="{_f(lx)}" y="{_f(cy - 2)}" width="150" height="12" '
                   f'fill="{viridis(0.5)}"/>'
                   f'<line x1="{_f(lx + 8)}" x2="{_f(lx + 8)}" y1="{_f(cy - 2)}" y2="{_f(cy + 10)}" '
                   'stroke="#ffffff" stroke-width="2.5"/>'
                   f'<text x="{_f(lx + 14)}" y="{_f(cy + 8)}" fill="#ffffff">onset</text>'
                   f'<line x1="{_f(lx + 70)}" x2="{_f(lx + 70)}" y1="{_f(cy - 2)}" y2="{_f(cy + 10)}" '
                   'stroke="#000000" stroke-width="2" stroke-dasharray="3 2"/>'
                   f'<text x="{_f(lx + 76)}" y="{_f(cy + 8)}" fill="#ffffff">offset (mean)</text></g>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- axes helpers
def _x_axis(out: list, lo: float, hi: float, x0: float, x1: float, y0: float, y1: float, label: str):
    def xpos(v: float) -> float:
        return x0 + (v - lo) / ((hi - lo) or 1.0) * (x1 - x0)
    for t in nice_ticks(lo, hi, 6):
        if lo - 1e-9 <= t <= hi + 1e-9:
            x = xpos(t)
            out.append(f'<line class="grid" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y0)}" y2="{_f(y1)}" stroke="#e6e6e6"/>'
                       f'<text x="{_f(x)}" y="{_f(y1 + 14)}" text-anchor="middle">{_f(t)}</text>')
    out.append(f'<line class="axis" x1="{_f(x0)}" x2="{_f(x1)}" y1="{_f(y1)}" y2="{_f(y1)}" stroke="#333"/>'
               f'<text class="axis-label" x="{_f((x0 + x1) / 2)}" y="{_f(y1 + 30)}" '
               f'text-anchor="middle">{escape(label)}</text>')
    return xpos


def _range(values: list[float], include_zero: bool, pad: float = 0.05) -> tuple[float, float]:
    vals = [float(v) for v in values if _finite(v)]
    if include_zero:
        vals.append(0.0)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    lo = lo if include_zero and lo == 0.0 else lo - pad * span  # bars start at zero, not below it
    hi = hi if include_zero and hi == 0.0 else hi + pad * span
    t = nice_ticks(lo, hi, 6)
    return t[0], t[-1]


# --------------------------------------------------------------------------- bar chart
def bar_svg(categories: Sequence[str], series: Mapping[str, Sequence[float | None]], *, svg_id: str, title: str,
            x_label: str, errors: Mapping[str, Sequence[float | None]] | None = None,
            bar_h: float = 9.0, plot_w: float = 420.0) -> str:
    """Horizontal grouped bars: one row per category, one bar per series, optional ± error whiskers.

    Returns
    -------
    str
        ``<svg class="figure bar">``; each bar is ``<rect class="bar" data-series=... data-value=...>``.
    """
    names = list(series)
    for n in names:
        if len(series[n]) != len(categories):
            raise ValueError(f"series {n!r} needs one value per category")
    allv = [v for n in names for v in series[n]]
    if errors:
        allv += [v + e for n in names for v, e in zip(series[n], errors.get(n, [])) if _finite(v) and _finite(e)]
        allv += [v - e for n in names for v, e in zip(series[n], errors.get(n, [])) if _finite(v) and _finite(e)]
    lo, hi = _range(allv, include_zero=True)
    left = 14 + CHAR_W * max([len(str(c)) for c in categories] + [4])
    group_h = bar_h * max(len(names), 1) + 8
    top = 44.0
    width = max(left + plot_w + 20, _legend_width(names) + 24)
    height = top + group_h * len(categories) + 48
    out = _open(svg_id, "bar", width, height, title)
    out += _legend(names, 8, 34)
    xpos = _x_axis(out, lo, hi, left, left + plot_w, top, top + group_h * len(categories), x_label)
    zero = xpos(0.0)
    for ci, cat in enumerate(categories):
        gy = top + ci * group_h + 4
        out.append(f'<text class="row-label" x="{_f(left - 6)}" y="{_f(gy + group_h / 2)}" '
                   f'text-anchor="end">{escape(str(cat))}</text>')
        for si, name in enumerate(names):
            v = series[name][ci]
            if not _finite(v):
                continue
            y, x = gy + si * bar_h, xpos(float(v))
            colour = PALETTE[si % len(PALETTE)]
            out.append(f'<rect class="bar" data-series="{escape(str(name), quote=True)}" data-value="{float(v):.4g}" '
                       f'x="{_f(min(x, zero))}" y="{_f(y)}" width="{_f(max(abs(x - zero), 0.5))}" '
                       f'height="{_f(bar_h - 1)}" fill="{colour}"><title>{escape(str(cat))} / {escape(str(name))}: '
                       f'{float(v):.4g}</title></rect>')
            e = errors.get(name, [None] * len(categories))[ci] if errors else None
            if _finite(e):
                a, b = xpos(float(v) - float(e)), xpos(float(v) + float(e))
                ym = y + (bar_h - 1) / 2
                out.append(f'<line class="error" x1="{_f(a)}" x2="{_f(b)}" y1="{_f(ym)}" y2="{_f(ym)}" '
                           'stroke="#333" stroke-width="1"/>')
    out.append(f'<line class="zero" x1="{_f(zero)}" x2="{_f(zero)}" y1="{_f(top)}" '
               f'y2="{_f(top + group_h * len(categories))}" stroke="#333"/>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- dot plot
def dot_plot_svg(row_labels: Sequence[str], series: Mapping[str, Sequence], *, svg_id: str, title: str,
                 x_label: str, intervals: Mapping[str, Sequence[tuple[float, float] | None]] | None = None,
                 band: tuple[float, float] | None = None, band_label: str | None = None,
                 x_range: tuple[float, float] | None = None, row_h: float = 18.0, plot_w: float = 420.0) -> str:
    """Horizontal dot plot: rows of labels, one dot (or a strip of dots) per series, optional intervals.

    Parameters
    ----------
    row_labels : sequence of str
        One row per label.
    series : mapping name -> per-row values
        Each value is a number (one dot), a sequence of numbers (a strip, e.g. one
        dot per subject) or None.
    intervals : mapping name -> per-row (low, high), optional
        Whiskers drawn behind the dots (e.g. mean ± SD).
    band : (low, high), optional
        A shaded reference band (e.g. |z| < 2).
    x_range : (low, high), optional
        Fixed axis range (default: from the data, the intervals and the band).

    Returns
    -------
    str
        ``<svg class="figure dot-plot">``; each dot is ``<circle class="dot" data-series=...>``.
    """
    names = list(series)

    def points(v) -> list[float]:
        if v is None:
            return []
        if isinstance(v, (list, tuple, np.ndarray)):
            return [float(x) for x in v if _finite(x)]
        return [float(v)] if _finite(v) else []

    for n in names:
        if len(series[n]) != len(row_labels):
            raise ValueError(f"series {n!r} needs one entry per row")
    allv = [x for n in names for v in series[n] for x in points(v)]
    if intervals:
        allv += [x for n in names for iv in intervals.get(n, []) if iv for x in iv if _finite(x)]
    if band:
        allv += list(band)
    lo, hi = x_range if x_range else _range(allv, include_zero=False)
    left = 14 + CHAR_W * max([len(str(r)) for r in row_labels] + [4])
    top = 44.0
    width = max(left + plot_w + 20, _legend_width(names) + 24 + (CHAR_W * len(band_label) + 30 if band_label else 0))
    height = top + row_h * len(row_labels) + 48
    out = _open(svg_id, "dot-plot", width, height, title)
    out += _legend(names, 8, 34)
    bottom = top + row_h * len(row_labels)
    xpos = _x_axis(out, lo, hi, left, left + plot_w, top, bottom, x_label)
    if band:
        a, b = xpos(max(band[0], lo)), xpos(min(band[1], hi))
        out.append(f'<rect class="band" x="{_f(a)}" y="{_f(top)}" width="{_f(max(b - a, 0))}" '
                   f'height="{_f(bottom - top)}" fill="#888888" fill-opacity="0.15"/>')
        if band_label:
            lx = _legend_width(names) + 16
            out.append(f'<rect x="{_f(lx)}" y="25" width="14" height="10" fill="#888888" fill-opacity="0.3"/>'
                       f'<text x="{_f(lx + 18)}" y="34">{escape(band_label)}</text>')
    for r, label in enumerate(row_labels):
        y0 = top + r * row_h
        if r % 2:
            out.append(f'<rect class="stripe" x="{_f(left)}" y="{_f(y0)}" width="{_f(plot_w)}" height="{_f(row_h)}" '
                       'fill="#000000" fill-opacity="0.03"/>')
        out.append(f'<text class="row-label" x="{_f(left - 6)}" y="{_f(y0 + row_h * 0.68)}" '
                   f'text-anchor="end">{escape(str(label))}</text>')
        for si, name in enumerate(names):
            dy = y0 + row_h * (si + 1) / (len(names) + 1)
            colour = PALETTE[si % len(PALETTE)]
            iv = intervals.get(name, [None] * len(row_labels))[r] if intervals else None
            if iv and _finite(iv[0]) and _finite(iv[1]):
                out.append(f'<line class="interval" x1="{_f(xpos(iv[0]))}" x2="{_f(xpos(iv[1]))}" y1="{_f(dy)}" '
                           f'y2="{_f(dy)}" stroke="{colour}" stroke-width="1.5"/>')
            for x in points(series[name][r]):
                xc = min(max(xpos(x), left), left + plot_w)
                out.append(f'<circle class="dot" data-series="{escape(str(name), quote=True)}" '
                           f'data-value="{x:.4g}" cx="{_f(xc)}" cy="{_f(dy)}" r="3.2" fill="{colour}" '
                           f'fill-opacity="0.85"><title>{escape(str(label))} / {escape(str(name))}: {x:.4g}</title>'
                           "</circle>")
    out.append("</svg>")
    return "\n".join(out)
