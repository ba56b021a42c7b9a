"""Gait-event plausibility: strikes and offs alternate per side and between sides (pure; no I/O).

Findings, codes and thresholds come from :mod:`transforms.plausibility`, documented in
``docs/qc_thresholds.md``.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from transforms.plausibility import EVENT_TIME_TOL_S, Finding, check_stride_period, make_finding

__all__ = ["check_events"]

_STRIKE = {"foot strike", "foot contact", "heel strike", "initial contact", "touchdown", "touch down",
           "fs", "hs", "ic", "strike"}
_OFF = {"foot off", "toe off", "lift off", "liftoff", "fo", "to", "off"}


def _side(context) -> str | None:
    c = str(context).strip().lower()
    if c in ("l", "left", "gauche"):
        return "left"
    if c in ("r", "right", "droit", "droite"):
        return "right"
    return None


def _kind(label) -> str | None:
    s = str(label).strip().lower().replace("_", " ").replace("-", " ")
    if s in _STRIKE:
        return "strike"
    if s in _OFF:
        return "off"
    return None


def check_events(events, /) -> list[Finding]:
    """Gait-event order: strike/off alternate per side, strikes alternate between sides.

    Parameters
    ----------
    events : polars.DataFrame or iterable of (context, label, time_s)
        One row per event.  A DataFrame needs columns ``context``, ``label``,
        ``time_s``.  Context ``Left``/``Right`` (also ``L``/``R``); label ``Foot Strike`` /
        ``Foot Off`` (also heel strike, toe off, FS/FO ...).  Other events are ignored;
        order of rows is irrelevant.

    Returns
    -------
    list of Finding
        ``event_duplicate`` (warn), ``event_order`` (bad, per side: two strikes or two offs
        in a row), ``event_sides_not_alternating`` (warn, within the span both sides
        cover), ``stride_period_implausible`` (median same-side strike-to-strike time
        outside ``STRIDE_PERIOD_RANGE_S``) or ``events_not_assessable`` (info).

    Raises
    ------
    ValueError
        If a row has a non-finite time or the DataFrame lacks a column.
    """
    if isinstance(events, pl.DataFrame):
        missing = {"context", "label", "time_s"} - set(events.columns)
        if missing:
            raise ValueError(f"events lacks columns {sorted(missing)}")
        rows = list(zip(events["context"].to_list(), events["label"].to_list(), events["time_s"].to_list()))
    else:
        rows = [tuple(r) for r in events]
    ev = []
    for ctx, lab, t in rows:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"event time must be finite, got {t!r} for {ctx!r} {lab!r}")
        side, kind = _side(ctx), _kind(lab)
        if side and kind:
            ev.append((t, side, kind))
    if not ev:
        return [make_finding("events_not_assessable", "No left/right foot strike or foot off events to check.")]
    out: list[Finding] = []
    ev.sort()
    dedup = []
    for e in ev:
        if dedup and dedup[-1][1:] == e[1:] and abs(e[0] - dedup[-1][0]) < EVENT_TIME_TOL_S:
            out.append(make_finding("event_duplicate",
                                f"{e[1].capitalize()} foot {e[2]} at {e[0]:.3f} s is duplicated.",
                                side=e[1], kind=e[2], time_s=e[0]))
            continue
        dedup.append(e)
    name = {"strike": "foot strike", "off": "foot off"}
    for side in ("left", "right"):
        seq = [e for e in dedup if e[1] == side]
        for prev, cur in zip(seq, seq[1:]):
            if cur[0] - prev[0] < EVENT_TIME_TOL_S:
                msg = (f"{side.capitalize()} {name[prev[2]]} and {name[cur[2]]} are both at "
                       f"{cur[0]:.3f} s.")
            elif cur[2] == prev[2]:
                other = "foot off" if cur[2] == "strike" else "foot strike"
                msg = (f"{side.capitalize()} {name[cur[2]]} at {cur[0]:.3f} s follows the {name[prev[2]]} "
                       f"at {prev[0]:.3f} s with no {other} in between.")
            else:
                continue
            out.append(make_finding("event_order", msg, side=side, first=[prev[2], prev[0]],
                                second=[cur[2], cur[0]]))
    strikes = [e for e in dedup if e[2] == "strike"]
    sides = {e[1] for e in strikes}
    if sides == {"left", "right"}:
        t0 = max(min(e[0] for e in strikes if e[1] == s) for s in sides)
        t1 = min(max(e[0] for e in strikes if e[1] == s) for s in sides)
        span = [e for e in strikes if t0 - EVENT_TIME_TOL_S <= e[0] <= t1 + EVENT_TIME_TOL_S]
        for prev, cur in zip(span, span[1:]):
            if prev[1] == cur[1]:
                out.append(make_finding(
                    "event_sides_not_alternating",
                    f"Two {cur[1]} foot strikes ({prev[0]:.3f} s and {cur[0]:.3f} s) with no "
                    f"{'right' if cur[1] == 'left' else 'left'} foot strike in between.",
                    side=cur[1], times_s=[prev[0], cur[0]]))
    strides = []
    for side in ("left", "right"):
        ts = [e[0] for e in strikes if e[1] == side]
        strides.extend(np.diff(ts))
    if strides:
        out.extend(check_stride_period(float(np.median(strides)), source="events"))
    return out
