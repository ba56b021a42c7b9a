"""Co-contraction of antagonist muscle pairs.

Falconer & Winter (1985) co-contraction index::

    CCI = 2 * sum(min(a, b)) / sum(a + b)

computed over the samples of a window (a cycle, a phase).  It is returned as a
*fraction* in [0, 1] by default (identical envelopes -> 1, activity never overlapping
-> 0); ``as_percent=True`` multiplies by 100.  Envelopes should be amplitude-normalised
first (e.g. :func:`transforms.emg.normalise_amplitude`) so that both muscles are on a
comparable scale.  Small negative values from zero-phase filter undershoot are clipped
to 0 before the computation.
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["DEFAULT_ANTAGONIST_PAIRS", "NEGATIVE_TOLERANCE", "cci_falconer_winter", "cci_pairs"]

#: Lower-limb antagonist pairs (SENIAM-style abbreviations as in the synergies fixture).
DEFAULT_ANTAGONIST_PAIRS = (("TA", "SO"), ("TA", "GM"), ("TA", "GL"), ("VL", "BF"), ("VM", "ST"), ("RF", "BF"))
#: Negative envelope values below -NEGATIVE_TOLERANCE x max|envelope| are rejected as
#: not an envelope (a raw, un-rectified signal); smaller ones are clipped to 0.
NEGATIVE_TOLERANCE = 0.05


def _envelope(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty array")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    scale = np.max(np.abs(a)) if a.size else 0.0
    if scale > 0 and a.min() < -NEGATIVE_TOLERANCE * scale:
        raise ValueError(f"{name} has large negative values: pass rectified envelopes, not raw EMG")
    return np.clip(a, 0.0, None)


def cci_falconer_winter(a, b, /, *, as_percent: bool = False):
    """Falconer & Winter co-contraction index of two envelopes along the last axis.

    Parameters
    ----------
    a, b : array_like
        Envelopes of the antagonist pair, same shape: 1-D (samples) or N-D (e.g.
        cycles x points), amplitude-normalised.
    as_percent : bool
        Return 0-100 % instead of a 0-1 fraction.

    Returns
    -------
    float or numpy.ndarray
        CCI per leading index; NaN where both envelopes are all zero.

    Raises
    ------
    ValueError
        On shape mismatch, empty or non-finite input, or raw (signed) signals.
    """
    x = _envelope(a, "a")
    y = _envelope(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    num = 2.0 * np.minimum(x, y).sum(axis=-1)
    den = (x + y).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cci = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if as_percent:
        cci = cci * 100.0
    return float(cci) if np.ndim(cci) == 0 else cci


def cci_pairs(envelopes: dict, /, *, pairs=DEFAULT_ANTAGONIST_PAIRS, as_percent: bool = False) -> pl.DataFrame:
    """CCI for every antagonist pair present in ``envelopes`` (name -> array).

    Each array may be 1-D or cycles x points; the result has one row per pair and
    leading index (``cycle`` = -1 for 1-D input).

    Returns
    -------
    polars.DataFrame
        Columns ``muscle_a``, ``muscle_b``, ``cycle``, ``cci`` (fraction or %).

    Raises
    ------
    ValueError
        As :func:`cci_falconer_winter`.
    """
    rows = []
    for m1, m2 in pairs:
        if m1 not in envelopes or m2 not in envelopes:
            continue
        v = np.atleast_1d(cci_falconer_winter(envelopes[m1], envelopes[m2], as_percent=as_percent))
        one_d = np.ndim(envelopes[m1]) == 1
        for k, c in enumerate(v.reshape(-1)):
            rows.append({"muscle_a": m1, "muscle_b": m2, "cycle": -1 if one_d else k, "cci": float(c)})
    return pl.DataFrame(rows, schema={"muscle_a": pl.Utf8, "muscle_b": pl.Utf8, "cycle": pl.Int64, "cci": pl.Float64})
