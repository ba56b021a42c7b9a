"""Muscle synergies by non-negative matrix factorisation (numpy + numba; no I/O).

Model
    ``D ~= W H`` with ``D`` the non-negative ``muscles x samples`` matrix of
    time-normalised, amplitude-normalised envelopes (cycles concatenated),
    ``W`` the ``muscles x k`` weights (motor modules) and ``H`` the
    ``k x samples`` activation profiles (motor primitives).

Algorithm
    Coordinate descent on the Frobenius loss, i.e. hierarchical alternating
    least squares (HALS; Cichocki & Phan 2009): scikit-learn's
    ``sklearn.decomposition.non_negative_factorization(solver="cd")`` updates,
    written out in numba so that the restarts run at once on numba's threads,
    without the per-sweep Python overhead and with each sweep vectorised along the
    samples, its matrix products included (no BLAS call per sweep: at these
    shapes packing the operands cost more than the arithmetic); the same factors
    to ~1e-13 (tests compare them with scikit-learn), from
    ``N_RESTARTS`` (default 10) random uniform initialisations drawn from
    ``numpy.random.default_rng(seed)`` (passed as ``init="custom"``, so a seed
    reproduces the result).  Each run stops when scikit-learn's projected-gradient
    violation falls below ``TOL`` (1e-6) times its first value or after
    ``MAX_ITER`` (1000) sweeps; factors are floored at 1e-12 (no synergy is
    exactly zero) and the run with the highest VAF is kept.

Variance accounted for (uncentred)
    ``VAF = 1 - ||D - W H||_F^2 / ||D||_F^2`` (Torres-Oviedo et al. 2006;
    the uncentred definition, not the R^2 about the mean).

Number of synergies
    The smallest ``k`` with ``VAF >= VAF_THRESHOLD`` (0.90), searching
    ``k = 1 .. min(muscles, max_synergies)``.  If none reaches it the largest
    ``k`` tried is returned with ``reached_threshold = False``.

Normalisation
    Each synergy's weight vector is scaled to unit maximum (its largest
    muscle weight is 1) and its activation profile multiplied by the same
    factor, so ``W H`` is unchanged; synergies are ordered by the sample
    index of their activation peak.

References
----------
Lee DD, Seung HS (1999). Learning the parts of objects by non-negative matrix
factorization. Nature 401:788-791.
Cichocki A, Phan AH (2009). Fast local algorithms for large scale nonnegative
matrix and tensor factorizations. IEICE Trans Fundamentals E92-A(3):708-721.
Torres-Oviedo G, Macpherson JM, Ting LH (2006). Muscle synergy organization
is robust across a variety of postural perturbations. J Neurophysiol
96(3):1530-1546.
Santuz A, Ekizos A, Janshen L, Baltzopoulos V, Arampatzis A (2017). On the
methodological implications of extracting muscle synergies from human
locomotion. Int J Neural Syst 27(5):1750007.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

#: VAF threshold for choosing the number of synergies (uncentred VAF, fraction).
VAF_THRESHOLD = 0.90
#: Local (per-muscle) VAF every muscle must also reach (Torres-Oviedo et al. 2006; Clark et al. 2010
#: use 75 %): a global 90 % can hide a muscle the synergies do not reconstruct.
LOCAL_VAF_THRESHOLD = 0.75
#: Random restarts per k (best VAF kept).
N_RESTARTS = 10
#: Maximum coordinate-descent (HALS) sweeps per restart.
MAX_ITER = 1000
#: Stopping tolerance: projected-gradient violation relative to its first value (scikit-learn ``tol``).
TOL = 1e-6
#: Default random seed for the initialisations.
DEFAULT_SEED = 0
#: Floor applied to the factors (keeps synergies from being exactly 0).
_EPS = 1e-12


@dataclass(frozen=True)
class SynergyResult:
    """Result of :func:`extract_synergies`.

    Attributes
    ----------
    n_synergies : int
        Chosen number of synergies ``k``.
    weights : numpy.ndarray, shape (muscles, k)
        Muscle weights, each column with maximum 1.
    activations : numpy.ndarray, shape (k, samples)
        Activation profiles, in the input's amplitude unit.
    vaf : float
        Uncentred VAF (fraction) of the chosen factorisation.
    vaf_by_k : dict[int, float]
        Best VAF for every ``k`` tried.
    reached_threshold : bool
        Whether ``vaf >= vaf_threshold`` and every local VAF ``>= local_vaf_threshold``.
    local_vaf : numpy.ndarray, shape (muscles,)
        Uncentred VAF of each muscle's row (fraction).
    """

    n_synergies: int
    weights: np.ndarray
    activations: np.ndarray
    vaf: float
    vaf_by_k: dict[int, float] = field(default_factory=dict)
    reached_threshold: bool = True
    local_vaf: np.ndarray | None = None


def local_vaf(envelopes, weights, activations, /) -> np.ndarray:
    """Uncentred VAF of each muscle (row): ``1 - sum_t (d - WH)^2 / sum_t d^2``.

    Parameters
    ----------
    envelopes : array_like, shape (muscles, samples)
    weights : array_like, shape (muscles, k)
    activations : array_like, shape (k, samples)

    Returns
    -------
    numpy.ndarray
        One fraction per muscle; NaN for an all-zero row.

    Raises
    ------
    ValueError
        On mismatched shapes.
    """
    d = np.asarray(envelopes, dtype=float)
    w = np.asarray(weights, dtype=float)
    h = np.asarray(activations, dtype=float)
    if d.ndim != 2 or w.shape[0] != d.shape[0] or h.shape[1] != d.shape[1] or w.shape[1] != h.shape[0]:
        raise ValueError(f"shapes do not match: D {d.shape}, W {w.shape}, H {h.shape}")
    sse = ((d - w @ h) ** 2).sum(axis=1)
    tot = (d ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, 1.0 - sse / np.where(tot > 0, tot, 1.0), np.nan)


def _check_matrix(envelopes) -> np.ndarray:
    d = np.asarray(envelopes, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"envelopes must be 2-D (muscles x samples), got shape {d.shape}")
    if d.shape[0] < 1 or d.shape[1] < 2:
        raise ValueError(f"envelopes needs >= 1 muscle and >= 2 samples, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("envelopes contains NaN or infinite values")
    if np.any(d < 0):
        raise ValueError(
            f"envelopes must be non-negative (min {d.min():.3g}); clip small filter undershoots to 0 first"
        )
    if not np.any(d > 0):
        raise ValueError("envelopes is all zero")
    return np.ascontiguousarray(d)  # the numba kernels' matrix products want contiguous rows


def vaf(envelopes, weights, activations, /) -> float:
    """Uncentred variance accounted for, ``1 - ||D - W H||^2 / ||D||^2``.

    Parameters
    ----------
    envelopes : array_like, shape (m, n)
        Data ``D``.
    weights : array_like, shape (m, k)
        ``W``.
    activations : array_like, shape (k, n)
        ``H``.

    Returns
    -------
    float
        VAF as a fraction (1 = perfect reconstruction).

    Raises
    ------
    ValueError
        On incompatible shapes or an all-zero ``D``.
    """
    d = np.asarray(envelopes, dtype=float)
    w = np.asarray(weights, dtype=float)
    h = np.asarray(activations, dtype=float)
    shapes_ok = d.ndim == w.ndim == h.ndim == 2 and w.shape[0] == d.shape[0]
    if not (shapes_ok and h.shape[1] == d.shape[1] and w.shape[1] == h.shape[0]):
        raise ValueError(f"incompatible shapes D{d.shape}, W{w.shape}, H{h.shape}")
    denom = np.sum(d**2)
    if denom == 0:
        raise ValueError("envelopes is all zero; VAF undefined")
    return float(1.0 - np.sum((d - w @ h) ** 2) / denom)


def _solve(d: np.ndarray, w0: np.ndarray, h0: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """One HALS run from (w0, h0): scikit-learn's coordinate-descent NMF
    (``non_negative_factorization(solver="cd", init="custom")``, no regularisation, no shuffling), written
    out as numba kernels (:func:`_hals`), same updates in the same order; kept here as the one-run
    reference of :func:`nmf` (tests compare both with scikit-learn)."""
    wt = np.ascontiguousarray(np.asarray(w0, dtype=np.float64).T)
    h = np.array(h0, dtype=np.float64, order="C")
    _hals(d, wt, h, float(tol), int(max_iter))
    return np.maximum(wt.T, _EPS), np.maximum(h, _EPS)


@numba.njit(cache=True, nogil=True)
def _cd_sweep(f, hess, lin, g):  # pragma: no cover - numba
    """One coordinate-descent sweep over the rows of ``f`` (k x p, a factor with its components as rows:
    ``H``, or ``W`` transposed), scikit-learn's ``_update_cdnmf_fast`` on ``f.T``: for each component
    ``t`` the gradient of every element, ``-lin[t] + sum_r hess[t, r] f[r]`` (summed in that order, as
    scikit-learn), the projected-gradient violation (:func:`_violation`), then the update
    ``max(f - grad / hess[t, t], 0)``.
    The elements of one row do not depend on each other, so each step runs along the row (vectorised);
    each element's arithmetic is scikit-learn's. ``g``: scratch of length >= p. Returns the violation."""
    k, p = f.shape
    violation = 0.0
    for t in range(k):
        for i in range(p):
            g[i] = -lin[t, i]
        for r in range(k):
            c = hess[t, r]
            fr = f[r]
            for i in range(p):
                g[i] += c * fr[i]
        ft = f[t]
        violation += _violation(g, ft, p)
        h_tt = hess[t, t]
        if h_tt != 0:
            for i in range(p):
                ft[i] = max(ft[i] - g[i] / h_tt, 0.0)
    return violation


@numba.njit(cache=True, nogil=True, fastmath=True)
def _violation(g, ft, p):  # pragma: no cover - numba
    """The projected-gradient violation of a row's ``p`` elements: ``sum |min(0, g)|`` where ``ft`` is 0, else
    ``sum |g|``, summed in vector lanes (fast-math lets the compiler reorder this sum, and only it). It only
    decides when a run stops: scikit-learn sums it element after element, a chain of additions that took
    ~40 % of a sweep; the two sums differ by rounding (~1e-16 of the violation), so a run stops at the same
    sweep unless its ratio to the first sweep's is that close to ``tol``."""
    v = 0.0
    for i in range(p):
        x = g[i]
        v += abs(min(0.0, x) if ft[i] == 0 else x)
    return v


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _grams(f, x, ff, fx):  # pragma: no cover - numba
    """``ff = f f^T`` (k x k) and ``fx = f x^T`` (k x m) into the given arrays: each element one dot product of
    two rows, summed in vector lanes (fast-math lets the compiler reorder these sums, and only them), ``ff``'s
    lower triangle copied from its upper one. A sweep's matrix products through BLAS cost ~60 % of the sweep
    at these shapes (k <= 8 rows, ~2 000 samples: each call packs its operands); the sums differ from BLAS's
    by rounding (~1e-16 of the values)."""
    k, n = f.shape
    m = x.shape[0]
    for a in range(k):
        fa = f[a]
        for b in range(a, k):
            fb = f[b]
            s = 0.0
            for i in range(n):
                s += fa[i] * fb[i]
            ff[a, b] = s
            ff[b, a] = s
        for b in range(m):
            xb = x[b]
            s = 0.0
            for i in range(n):
                s += fa[i] * xb[i]
            fx[a, b] = s


@numba.njit(cache=True, nogil=True)
def _weighted_rows(wt, x, out):  # pragma: no cover - numba
    """``out = wt x`` (k x n): each row of ``out`` the rows of ``x`` weighted by a row of ``wt`` and added in
    order (each element summed over the muscles one after the other; the loop runs along the samples)."""
    k, m = wt.shape
    n = x.shape[1]
    for t in range(k):
        o = out[t]
        c = wt[t, 0]
        x0 = x[0]
        for i in range(n):
            o[i] = c * x0[i]
        for j in range(1, m):
            c = wt[t, j]
            xj = x[j]
            for i in range(n):
                o[i] += c * xj[i]


@numba.njit(cache=True, nogil=True)
def _hals(x, wt, h, tol, max_iter):  # pragma: no cover - numba
    """scikit-learn's ``_fit_coordinate_descent`` (W then H each sweep; stop when the violation falls to
    ``tol`` x the first sweep's), in place on ``wt`` (W transposed, k x m) and ``h`` (k x n). The products
    each half-sweep needs (``h h^T``, ``h x^T``; ``wt wt^T``, ``wt x``) are computed by :func:`_grams` and
    :func:`_weighted_rows` into arrays made once per run."""
    k, m = wt.shape
    n = x.shape[1]
    g = np.empty(max(m, n))
    hh, hx, ww, wx = np.empty((k, k)), np.empty((k, m)), np.empty((k, k)), np.empty((k, n))
    no_rows, no_cols = np.empty((0, m)), np.empty((k, 0))
    first = 0.0
    for it in range(max_iter):
        _grams(h, x, hh, hx)
        violation = _cd_sweep(wt, hh, hx, g)
        _grams(wt, no_rows, ww, no_cols)
        _weighted_rows(wt, x, wx)
        violation += _cd_sweep(h, ww, wx, g)
        if it == 0:
            first = violation
        if first == 0 or violation / first <= tol:
            break


@numba.njit(cache=True, parallel=True)
def _hals_restarts(x, wts, hs, tol, max_iter):  # pragma: no cover - numba
    """Every restart's run (independent, so on numba's thread pool); in place."""
    for r in numba.prange(wts.shape[0]):
        _hals(x, wts[r], hs[r], tol, max_iter)


@numba.njit(cache=True, nogil=True)
def _hals_restarts_serial(x, wts, hs, tol, max_iter):  # pragma: no cover - numba
    """Every restart's run, one after the other on the calling thread; in place (the same runs as
    :func:`_hals_restarts`: each restart is independent)."""
    for r in range(wts.shape[0]):
        _hals(x, wts[r], hs[r], tol, max_iter)


def nmf(
    envelopes,
    /,
    *,
    n_synergies: int,
    n_restarts: int = N_RESTARTS,
    seed: int = DEFAULT_SEED,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Best-of-restarts NMF (scikit-learn coordinate descent) for a fixed number of synergies.

    Parameters
    ----------
    envelopes : array_like, shape (m, n)
        Non-negative ``muscles x samples`` data (any amplitude unit,
        typically normalised to each muscle's maximum).
    n_synergies : int, keyword-only
        ``k``, ``1 <= k <= m``.
    n_restarts : int, keyword-only
        Random initialisations; the one with the highest VAF is returned.
    seed : int, keyword-only
        Seed for ``numpy.random.default_rng``.
    max_iter : int, keyword-only
        Maximum coordinate-descent sweeps per restart.
    tol : float, keyword-only
        Stopping tolerance, relative to the first sweep's projected-gradient violation.
    parallel : bool, keyword-only
        Run the restarts on numba's threads (default), or one after the other on the calling thread: the same
        result bit for bit, less CPU (no threads to keep in step) and about twice the wall time; for callers
        whose cores are busy with other work anyway.

    Returns
    -------
    (weights, activations, vaf) : tuple
        ``weights`` (m x k, unit-max columns), ``activations`` (k x n),
        uncentred ``vaf`` (fraction).

    Raises
    ------
    ValueError
        On negative, non-finite or all-zero data, or invalid ``k`` /
        ``n_restarts`` / ``max_iter``.
    """
    d = _check_matrix(envelopes)
    m, n = d.shape
    if not (isinstance(n_synergies, (int, np.integer)) and 1 <= n_synergies <= m):
        raise ValueError(f"n_synergies must be an integer in [1, {m}], got {n_synergies!r}")
    if n_restarts < 1 or max_iter < 1:
        raise ValueError("n_restarts and max_iter must be >= 1")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(d.mean() / n_synergies)
    wts, hs = np.empty((n_restarts, n_synergies, m)), np.empty((n_restarts, n_synergies, n))
    for r in range(n_restarts):  # drawn in the order of one run after the other
        wts[r] = (rng.uniform(0.0, 1.0, size=(m, n_synergies)) * scale + _EPS).T
        hs[r] = rng.uniform(0.0, 1.0, size=(n_synergies, n)) * scale + _EPS
    (_hals_restarts if parallel else _hals_restarts_serial)(d, wts, hs, float(tol), int(max_iter))
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for r in range(n_restarts):
        w, h = np.maximum(wts[r].T, _EPS), np.maximum(hs[r], _EPS)
        v = vaf(d, w, h)
        if best is None or v > best[2]:
            best = (w, h, v)
    assert best is not None
    w, h, v = best
    w, h = _normalise(w, h)
    return w, h, v


def _normalise(w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    peak = w.max(axis=0)
    peak[peak <= 0] = 1.0
    w = w / peak
    h = h * peak[:, None]
    order = np.argsort(np.argmax(h, axis=1), kind="stable")
    return w[:, order], h[order]


def extract_synergies(
    envelopes,
    /,
    *,
    vaf_threshold: float = VAF_THRESHOLD,
    local_vaf_threshold: float = LOCAL_VAF_THRESHOLD,
    max_synergies: int | None = None,
    n_restarts: int = N_RESTARTS,
    seed: int = DEFAULT_SEED,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    parallel: bool = True,
) -> SynergyResult:
    """Extract muscle synergies, choosing the smallest k with VAF >= threshold and every muscle's local
    VAF >= ``local_vaf_threshold``.

    Parameters
    ----------
    envelopes : array_like, shape (muscles, samples)
        Non-negative, time-normalised envelopes with cycles concatenated
        along the samples axis (e.g. ``cycles * 101`` samples), normally
        amplitude-normalised to each muscle's maximum.
    vaf_threshold : float, keyword-only
        Uncentred VAF fraction to reach (default 0.90).
    local_vaf_threshold : float, keyword-only
        Per-muscle VAF fraction every muscle must reach too (default 0.75; 0 disables it).
    max_synergies : int or None, keyword-only
        Largest ``k`` tried (default: number of muscles).
    n_restarts, seed, max_iter, tol, parallel : keyword-only
        As :func:`nmf`; every ``k`` uses the same ``seed``.

    Returns
    -------
    SynergyResult
        Chosen ``k``, unit-max weights, activations, VAF and VAF per ``k``
        (only the ``k`` values tried; the search stops at the first ``k``
        reaching the threshold).

    Raises
    ------
    ValueError
        On invalid data (see :func:`nmf`), ``vaf_threshold`` outside (0, 1],
        ``local_vaf_threshold`` outside [0, 1] or ``max_synergies < 1``.
    """
    d = _check_matrix(envelopes)
    if not (0.0 < vaf_threshold <= 1.0):
        raise ValueError(f"vaf_threshold must be in (0, 1], got {vaf_threshold!r}")
    m = d.shape[0]
    k_max = m if max_synergies is None else int(max_synergies)
    if k_max < 1:
        raise ValueError(f"max_synergies must be >= 1, got {max_synergies!r}")
    k_max = min(k_max, m)
    if not (0.0 <= local_vaf_threshold <= 1.0):
        raise ValueError(f"local_vaf_threshold must be in [0, 1], got {local_vaf_threshold!r}")
    vaf_by_k: dict[int, float] = {}
    chosen = None
    for k in range(1, k_max + 1):
        w, h, v = nmf(d, n_synergies=k, n_restarts=n_restarts, seed=seed, max_iter=max_iter, tol=tol,
                      parallel=parallel)
        vaf_by_k[k] = v
        loc = local_vaf(d, w, h)
        ok = v >= vaf_threshold and bool(np.all(np.nan_to_num(loc, nan=1.0) >= local_vaf_threshold))
        chosen = (k, w, h, v, loc, ok)
        if ok:
            break
    assert chosen is not None
    k, w, h, v, loc, ok = chosen
    return SynergyResult(n_synergies=k, weights=w, activations=h, vaf=v, vaf_by_k=vaf_by_k, reached_threshold=ok,
                         local_vaf=loc)


def match_synergies(reference_weights, candidate_weights, /) -> tuple[np.ndarray, np.ndarray]:
    """Pair two sets of synergy weight vectors by maximum total cosine similarity.

    Parameters
    ----------
    reference_weights : array_like, shape (m, k1)
    candidate_weights : array_like, shape (m, k2)
        Weight vectors as columns (same muscles in the same order).

    Returns
    -------
    (pairs, cosines) : tuple of numpy.ndarray
        ``pairs`` is ``(min(k1, k2), 2)`` column indices
        ``[reference, candidate]`` from the Hungarian assignment
        (``scipy.optimize.linear_sum_assignment``); ``cosines`` the cosine
        similarity of each pair.

    Raises
    ------
    ValueError
        On non-2-D inputs, different muscle counts, or a zero column.
    """
    a = np.asarray(reference_weights, dtype=float)
    b = np.asarray(candidate_weights, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"weights must be 2-D with equal muscle counts, got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("a weight vector is all zero; cosine undefined")
    cos = (a / na).T @ (b / nb)
    rows, cols = linear_sum_assignment(-cos)
    return np.column_stack([rows, cols]), cos[rows, cols]
