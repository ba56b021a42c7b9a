"""Report figures: Vega-Lite charts (``altair``) rendered offline to inline SVG (``vl-convert``).

Every renderer is a pure function from numbers and labels to one ``<svg>`` element (a string)
with an ``id``, ``class="figure <kind>"``, a ``<title>`` and ``role="img"``, meant to be inlined
in HTML: no script, font, image or URL (the SVG namespace declarations are dropped; inline SVG in
HTML does not need them). Vega's SVG renderer labels every mark for screen readers: each cell,
bar and dot carries an ``aria-label`` such as ``"soleus / walk / fresh: 4.25"``, and each layer
is a ``<g>`` whose class names it (``cell_marks``, ``missing_marks``, ``onset_marks``,
``offset_marks``, ``bar_marks``, ``error_marks``, ``dot_marks``, ``interval_marks``,
``band_marks``). Colours: viridis for intensities, the Okabe-Ito palette (colour-blind safe)
for series. Missing values (None / NaN) are drawn grey (heatmap) or skipped.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape

import altair as alt
import numpy as np

#: Okabe-Ito qualitative palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
MISSING = "#dddddd"
FONT = "DejaVu Sans, Arial, sans-serif"
_CONFIG = {"font": FONT, "background": "#ffffff", "view": {"stroke": None},
           "axis": {"labelFontSize": 11, "titleFontSize": 11}, "legend": {"labelFontSize": 11},
           "title": {"fontSize": 13, "anchor": "start", "subtitleFontSize": 11}}


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


def _render(chart, *, svg_id: str, kind: str, title: str) -> str:
    """SVG of a chart with our root element: id, classes, role and an accessible title."""
    import vl_convert  # lazy: starts its JavaScript engine on first use

    spec = chart.to_dict()
    spec["config"] = _CONFIG
    svg = vl_convert.vegalite_to_svg(spec)
    root = re.match(r"<svg\b([^>]*)>", svg)
    size = dict(re.findall(r'\b(width|height|viewBox)="([^"]*)"', root.group(1)))
    sid = escape(svg_id, quote=True)
    return (f'<svg id="{sid}" class="figure {escape(kind, quote=True)}" width="{size["width"]}" '
            f'height="{size["height"]}" viewBox="{size["viewBox"]}" role="img" aria-labelledby="{sid}-title">'
            f'<title id="{sid}-title">{escape(title)}</title>' + svg[root.end():])


def _series_colour(names: Sequence[str], legend: bool = True) -> alt.Color:
    return alt.Color("series:N", scale=alt.Scale(domain=list(names), range=[PALETTE[i % len(PALETTE)]
                                                                             for i in range(len(names))]),
                     legend=alt.Legend(orient="top", title=None) if legend else None)


# --------------------------------------------------------------------------- heatmap
def heatmap_svg(matrices, row_labels: Sequence[str], *, svg_id: str, title: str,
                panel_titles: Sequence[str] | None = None, x_values: Sequence[float] | None = None,
                marks: Sequence[Sequence[tuple[float, float] | None]] | None = None,
                vmin: float = 0.0, vmax: float = 1.0, x_label: str = "gait cycle (%)",
                colorbar_label: str = "normalised envelope (fraction of peak)", cell_w: float = 3.0, cell_h: float = 16.0) -> str:
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
        Drawn as a white solid tick (onset) and a black dashed tick (offset); marks outside the
        x range are left out.
    vmin, vmax : float
        Colour scale limits (viridis, clamped).

    Returns
    -------
    str
        ``<svg class="figure heatmap">``: one panel per matrix, a colour bar titled
        ``colorbar_label``; each cell's ``aria-label`` is ``"<row> at <x>: <value>"``.

    Raises
    ------
    ValueError
        If the matrices differ in shape or the row labels do not match their rows.
    """
    mats = [np.asarray(matrices, float)] if np.ndim(matrices) == 2 else [np.asarray(m, float) for m in matrices]
    n_rows, n_cols = mats[0].shape
    if any(m.shape != (n_rows, n_cols) for m in mats) or len(row_labels) != n_rows:
        raise ValueError("every matrix must be rows x cols with one row label per row")
    xs = np.arange(n_cols, dtype=float) if x_values is None else np.asarray(x_values, float)
    half = ((xs[-1] - xs[0]) / (n_cols - 1) if n_cols > 1 else 1.0) / 2
    lo, hi = float(xs[0] - half), float(xs[-1] + half)
    rows = [str(r) for r in row_labels]
    x_enc = alt.X("x:Q", title=x_label, scale=alt.Scale(domain=[lo, hi], nice=False, zero=False))
    scale = alt.Scale(scheme="viridis", domain=[vmin, vmax], clamp=True)
    colour = alt.Color("value:Q", scale=scale, legend=None)
    panels = []
    for p, m in enumerate(mats):
        y_enc = alt.Y("row:N", title=None, sort=rows, scale=alt.Scale(domain=rows), axis=alt.Axis(labels=p == 0))
        cells = [{"row": rows[r], "x": float(xs[c] - half), "x2": float(xs[c] + half),
                  "value": float(m[r, c]) if math.isfinite(m[r, c]) else None,
                  "desc": f"{rows[r]} at {xs[c]:g}: " + (f"{m[r, c]:.3g}" if math.isfinite(m[r, c]) else "missing")}
                 for r in range(n_rows) for c in range(n_cols)]
        base = alt.Chart(alt.Data(values=cells)).encode(x=x_enc, x2="x2:Q", y=y_enc, description="desc:N")
        layers = [base.transform_filter("isValid(datum.value)").mark_rect().encode(color=colour).properties(name="cell"),
                  base.transform_filter("!isValid(datum.value)").mark_rect(color=MISSING).properties(name="missing")]
        panel_marks = marks[p] if marks and p < len(marks) and marks[p] else []
        for k, (name, style) in enumerate((("onset", {"color": "#ffffff", "thickness": 2.5}),
                                           ("offset", {"color": "#000000", "thickness": 2, "strokeDash": [3, 2]}))):
            ticks = [{"row": rows[r], "x": float(mk[k]), "desc": f"{rows[r]}: mean {name} at {float(mk[k]):.3g}"}
                     for r, mk in enumerate(panel_marks[:n_rows]) if mk and _finite(mk[k]) and lo <= mk[k] <= hi]
            if ticks:
                layers.append(alt.Chart(alt.Data(values=ticks)).mark_tick(size=cell_h - 2, **style)
                              .encode(x=x_enc, y=y_enc, description="desc:N").properties(name=name))
        panels.append(alt.layer(*layers).properties(width=n_cols * cell_w, height=n_rows * cell_h,
                                                    title=str(panel_titles[p]) if panel_titles else ""))
    subtitle = "white tick: mean onset; dashed black tick: mean offset" if marks else ""
    steps = np.linspace(vmin, vmax, 25)
    bar = alt.Chart(alt.Data(values=[{"value": float(a), "x2": float(b)} for a, b in zip(steps[:-1], steps[1:])]))
    colour_bar = bar.mark_rect().encode(  # a colour bar, not a gradient legend: no url(#...) fill in the SVG
        x=alt.X("value:Q", title=colorbar_label, scale=alt.Scale(domain=[vmin, vmax], nice=False, zero=False),
                axis=alt.Axis(values=[vmin, vmax])), x2="x2:Q", color=alt.Color("value:Q", scale=scale, legend=None)
    ).properties(width=120, height=8, name="colorbar")
    chart = alt.vconcat(alt.hconcat(*panels, spacing=28), colour_bar).resolve_scale(color="shared").properties(
        title=alt.Title(title, subtitle=subtitle))
    return _render(chart, svg_id=svg_id, kind="heatmap", title=title)


# --------------------------------------------------------------------------- bar chart
def bar_svg(categories: Sequence[str], series: Mapping[str, Sequence[float | None]], *, svg_id: str, title: str,
            x_label: str, errors: Mapping[str, Sequence[float | None]] | None = None,
            intervals: Mapping[str, Sequence[tuple[float, float] | None]] | None = None, floor: float | None = None,
            bar_h: float = 9.0, plot_w: float = 420.0) -> str:
    """Horizontal grouped bars: one row per category, one bar per series, optional whiskers.

    Parameters
    ----------
    errors : mapping name -> per-category half-width, optional
        Symmetric ``value ± error`` whiskers.
    intervals : mapping name -> per-category (low, high), optional
        Whiskers from ``low`` to ``high`` (e.g. the interquartile range); used instead of ``errors``.
    floor : float, optional
        Whiskers never extend below it (e.g. 0 for non-negative statistics such as a CV); a
        clipped whisker says so in its label.

    Returns
    -------
    str
        ``<svg class="figure bar">``; each bar's ``aria-label`` is ``"<category> / <series>: <value>"``,
        whiskers are ``error_marks`` labelled ``"<category> / <series>: <low> to <high>"``, the zero line
        ``zero_marks``.

    Raises
    ------
    ValueError
        If a series does not have one value per category, or an interval's low is above its high.
    """
    names, cats = [str(n) for n in series], [str(c) for c in categories]
    for n in series:
        if len(series[n]) != len(categories):
            raise ValueError(f"series {n!r} needs one value per category")
    rows = []
    for name, key in zip(names, series):
        if intervals:
            ivs = intervals.get(key, [None] * len(cats))
        else:
            errs = errors.get(key, [None] * len(cats)) if errors else [None] * len(cats)
            ivs = [(float(v) - float(e), float(v) + float(e)) if _finite(v) and _finite(e) else None
                   for v, e in zip(series[key], errs)]
        for cat, v, iv in zip(cats, series[key], ivs):
            if not _finite(v):
                continue
            row = {"cat": cat, "series": name, "value": float(v), "desc": f"{cat} / {name}: {float(v):.4g}",
                   "lo": None, "hi": None}
            if iv and _finite(iv[0]) and _finite(iv[1]):
                lo, hi = float(iv[0]), float(iv[1])
                if lo > hi:
                    raise ValueError(f"interval of {cat!r} / {name!r} has low {lo} above high {hi}")
                clipped = floor is not None and lo < floor
                lo, hi = (max(lo, floor), max(hi, floor)) if floor is not None else (lo, hi)
                row.update(lo=lo, hi=hi, edesc=f"{cat} / {name}: {lo:.4g} to {hi:.4g}"
                           + (f" (clipped at {floor:g})" if clipped else ""))
            rows.append(row)
    y = alt.Y("cat:N", title=None, sort=cats, scale=alt.Scale(domain=cats))
    y_off = alt.YOffset("series:N", sort=names, scale=alt.Scale(domain=names))
    x = alt.X("value:Q", title=x_label, scale=alt.Scale(zero=True))
    base = alt.Chart(alt.Data(values=rows or [{"value": 0.0}]))
    bars = base.transform_filter("isValid(datum.cat)").mark_bar(height=bar_h - 1).encode(
        x=x, y=y, yOffset=y_off, color=_series_colour(names), description="desc:N").properties(name="bar")
    whiskers = base.transform_filter("isValid(datum.lo)").mark_rule(color="#333333").encode(
        x="lo:Q", x2="hi:Q", y=y, yOffset=y_off, description="edesc:N").properties(name="error")
    zero = alt.Chart(alt.Data(values=[{"value": 0.0}])).mark_rule(color="#333333").encode(x=x).properties(name="zero")
    chart = alt.layer(bars, whiskers, zero).properties(
        width=plot_w, height=alt.Step(bar_h * max(len(names), 1) + 8), title=title)
    return _render(chart, svg_id=svg_id, kind="bar", title=title)


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
        A shaded reference band (e.g. |z| < 2), named ``band_label`` in the subtitle.
    x_range : (low, high), optional
        Fixed axis range, dots outside it drawn at its edge (default: from the data, the
        intervals and the band).

    Returns
    -------
    str
        ``<svg class="figure dot-plot">``; each dot's ``aria-label`` is ``"<row> / <series>: <value>"``.

    Raises
    ------
    ValueError
        If a series does not have one entry per row.
    """
    names, labels = [str(n) for n in series], [str(r) for r in row_labels]

    def points(v) -> list[float]:
        if v is None:
            return []
        if isinstance(v, (list, tuple, np.ndarray)):
            return [float(x) for x in v if _finite(x)]
        return [float(v)] if _finite(v) else []

    for n in series:
        if len(series[n]) != len(row_labels):
            raise ValueError(f"series {n!r} needs one entry per row")
    dots = [{"row": lab, "series": name, "value": x, "desc": f"{lab} / {name}: {x:.4g}"}
            for name, key in zip(names, series) for lab, v in zip(labels, series[key]) for x in points(v)]
    whiskers = [{"row": lab, "series": name, "lo": float(iv[0]), "hi": float(iv[1])}
                for name, key in zip(names, series) if intervals
                for lab, iv in zip(labels, intervals.get(key, [None] * len(labels)))
                if iv and _finite(iv[0]) and _finite(iv[1])]
    scale = (alt.Scale(domain=[float(x_range[0]), float(x_range[1])], clamp=True, nice=False) if x_range
             else alt.Scale(zero=False, nice=True))
    x = alt.X("value:Q", title=x_label, scale=scale)
    y = alt.Y("row:N", title=None, sort=labels, scale=alt.Scale(domain=labels),
              axis=alt.Axis(grid=True, gridOpacity=0.3))
    y_off = alt.YOffset("series:N", sort=names, scale=alt.Scale(domain=names))
    layers = []
    if band:
        layers.append(alt.Chart(alt.Data(values=[{"value": float(band[0]), "hi": float(band[1])}]))
                      .mark_rect(color="#888888", opacity=0.15).encode(x=x, x2="hi:Q").properties(name="band"))
    if whiskers:
        layers.append(alt.Chart(alt.Data(values=whiskers)).mark_rule(strokeWidth=1.5).encode(
            x=alt.X("lo:Q", title=x_label, scale=scale), x2="hi:Q", y=y, yOffset=y_off,
            color=_series_colour(names)).properties(name="interval"))
    layers.append(alt.Chart(alt.Data(values=dots or [{"value": None}])).transform_filter("isValid(datum.row)")
                  .mark_circle(size=40, opacity=0.85)
                  .encode(x=x, y=y, yOffset=y_off, color=_series_colour(names), description="desc:N")
                  .properties(name="dot"))
    subtitle = f"shaded: {band_label}" if band and band_label else ""
    chart = alt.layer(*layers).properties(width=plot_w, height=alt.Step(row_h),
                                          title=alt.Title(title, subtitle=subtitle))
    return _render(chart, svg_id=svg_id, kind="dot-plot", title=title)
