"""Onset-detection bias and spread across SNRs, for every method in transforms.onsets.

Synthetic signal: a white Gaussian carrier (unit SD) gated by rectangular bursts (known
onsets) plus white Gaussian noise; SNR = 20 log10(burst SD / noise SD).  For each method
and SNR the script reports, over all true onsets, the median and mean detection error
(ms, negative = early), its SD, the 5-95 % range, the number of missed bursts (no
detection within 150 ms) and of extra detections (false bursts).

For Hodges & Bui on the 6 Hz linear envelope (``CORRECTED_METHOD``; the pipeline's default,
``transforms.onsets.DEFAULT_ONSET_METHOD``, is TKEO on raw EMG) it also prints the
bias predicted from the filter alone: the time at which the zero-phase low-passed step
crosses the threshold's share of the burst plateau
(``transforms.onsets.lowpass_step_crossing_ms``), and the residual after subtracting
that prediction per burst (the proposed bias correction).

Stride table (``--stride-table``, on by default): tibialis-anterior-like activity over strides of
0.7-1.3 s (a loading-response burst from 40 ms before each foot strike to 12 % of the stride, a
swing burst from 58 to 85 %: TA is silent ~46 % of the stride), each burst onset shaped as a
``step`` or a linear recruitment ramp of 20/50/100 ms (``ramp20`` ...; the true onset is where the
ramp starts). For every (method, baseline, shape, SNR, stride) it prints the median error of the
loading-response onsets and the rest of the row. ``baseline`` is ``fixed`` (the quietest
``DEFAULT_BASELINE_WINDOW_MS`` window) or ``adaptive``
(``transforms.onsets_baseline.stride_baseline_window_ms`` of the stride, as in the lake).
Every axis is a list option, so the table grows by options, not code.

Methods: ``hodges_bui`` (6 Hz envelope, uncorrected here), ``tkeo`` (raw EMG), ``double_threshold``
(conditioned EMG: DC removal + 20-450 Hz band-pass, as in the lake) and ``tkeo_refined`` (TKEO onsets moved
to the start of the recruitment ramp by ``transforms.onsets_refine``). A summary per method pools the
stride table at SNR >= 10 dB against the issue-13 target; ``bench/onset_bias_real.py`` adds the real
files with annotated foot strikes (tibialis anterior's loading-response burst per cycle).

Usage::

    .venv/bin/python bench/onset_bias.py --quick            # ~2-3 min
    .venv/bin/python bench/onset_bias.py [--trials 20] [--snr 3 6 10 20 30]
    .venv/bin/python bench/onset_bias.py --no-classic --methods tkeo --shapes step ramp50 \
        --stride-snr 10 20 --strides 0.7 1.1 --baselines fixed adaptive
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms import emg, onsets  # noqa: E402
from transforms.onsets_baseline import stride_baseline_window_ms  # noqa: E402

#: Every detector the bench compares (TKEO refined by the local change-point fit of transforms.onsets_refine
#: among them). The double threshold reads conditioned EMG, as in the lake.
METHODS = onsets.ONSET_METHODS

FS = 2000.0
MATCH_MS = 150.0
#: The envelope detector whose low-pass step bias is predicted and corrected.
CORRECTED_METHOD = "hodges_bui"


def synthetic_bursts(rng, snr_db, n_bursts=8, seconds=14.0):
    n = int(seconds * FS)
    mask = np.zeros(n)
    on, off = [], []
    t = 1.0
    for _ in range(n_bursts):
        t += rng.uniform(0.6, 0.9)
        s = int(t * FS)
        d = int(rng.uniform(0.3, 0.5) * FS)
        mask[s : s + d] = 1.0
        on.append(s)
        off.append(s + d)
        t += d / FS
    x = rng.standard_normal(n) * mask + rng.standard_normal(n) * 10 ** (-snr_db / 20)
    return x, np.array(on), np.array(off)


def detect(method, x, env, baseline_window_ms=onsets.DEFAULT_BASELINE_WINDOW_MS, rate=FS):
    kw = {"baseline_window_ms": baseline_window_ms}
    if method == "hodges_bui":
        env = emg.linear_envelope(x, rate_hz=rate) if env is None else env
        return onsets.onsets_hodges_bui(env, rate_hz=rate, **kw)
    if method == "tkeo":
        return onsets.onsets_tkeo(x, rate_hz=rate, **kw)
    if method == "tkeo_refined":
        return onsets.onsets_tkeo_refined(x, rate_hz=rate, **kw)
    return onsets.onsets_double_threshold(emg.condition(x, rate_hz=rate), rate_hz=rate, **kw)


# --------------------------------------------------------------------------- stride table
#: Onset shapes: linear recruitment ramp duration (s) from 0 to the burst plateau.
SHAPES = {"step": 0.0, "ramp20": 0.020, "ramp50": 0.050, "ramp100": 0.100}
#: TA bursts per stride: (onset, offset) as (s relative to the strike, or fraction of the stride).
TA_LOADING = (-0.040, 0.12)
TA_SWING = (0.58, 0.85)
#: The onset target of issue 13 (SNR >= 10 dB, every burst shape).
TARGET_BIAS_MS = 5.0
TARGET_MISS_PCT = 2.0
#: Stride-to-stride jitter (SD, fraction of the stride).
STRIDE_JITTER = 0.02


@dataclass(frozen=True)
class Scenario:
    """One cell of the stride table."""

    stride_s: float
    shape: str
    snr_db: float


@dataclass
class Row:
    errors_ms: np.ndarray
    missed: int
    extra: int
    n: int

    def cells(self) -> str:
        e = self.errors_ms if self.errors_ms.size else np.array([np.nan])
        return (f"{np.median(e):>8.1f}{np.mean(e):>8.1f}{np.std(e):>7.1f}{np.percentile(e, 5):>8.1f}"
                f"{np.percentile(e, 95):>8.1f}{self.missed:>8d}{self.extra:>7d}{self.n:>6d}")


def _gate(n, on_s, off_s, ramp_s):
    """Amplitude gate of one burst: a linear ramp from on_s over ramp_s, 1 until off_s."""
    t = np.arange(n) / FS
    g = np.clip((t - on_s) / ramp_s, 0.0, 1.0) if ramp_s > 0 else (t >= on_s).astype(float)
    return g * (t < off_s)


def ta_trial(rng, sc: Scenario, seconds=14.0, silent=None):
    """(signal, true loading-response onsets, every true onset) in samples; ``silent`` (fraction of the
    stride between the loading-response and the swing burst) moves the swing burst's start."""
    swing = TA_SWING if silent is None else (TA_LOADING[1] + silent, TA_SWING[1])
    n = int(seconds * FS)
    gate = np.zeros(n)
    lr, every = [], []
    t = 0.5
    while True:
        T = sc.stride_s * (1.0 + STRIDE_JITTER * rng.standard_normal())
        if t + T > seconds - 0.3:
            break
        for (a, b), first in ((TA_LOADING, True), (swing, False)):
            on = t + (a if first else a * T)
            off = t + b * T
            gate = np.maximum(gate, _gate(n, on, off, SHAPES[sc.shape]))
            every.append(int(round(on * FS)))
            if first:
                lr.append(int(round(on * FS)))
        t += T
    x = rng.standard_normal(n) * gate + rng.standard_normal(n) * 10 ** (-sc.snr_db / 20)
    return x, np.array(lr), np.array(every)


def baseline_window_ms(baseline: str, stride_s: float) -> float:
    """``fixed`` (the detectors' default window), ``adaptive`` (the lake's rule), ``adaptive:F``
    (fraction F of the stride, same bounds) or ``window:MS`` (a fixed window of MS ms)."""
    if baseline == "fixed":
        return onsets.DEFAULT_BASELINE_WINDOW_MS
    if baseline == "adaptive":
        return stride_baseline_window_ms(stride_s)
    kind, _, value = baseline.partition(":")
    if kind == "adaptive":
        return stride_baseline_window_ms(stride_s, fraction=float(value))
    if kind == "window":
        return float(value)
    raise ValueError(f"unknown baseline {baseline!r}")


def run_cell(method, baseline, sc: Scenario, trials: int, rng, silent=None) -> Row:
    win = baseline_window_ms(baseline, sc.stride_s)
    errors, missed, extra, n = [], 0, 0, 0
    for _ in range(trials):
        x, lr, every = ta_trial(rng, sc, silent=silent)
        env = emg.linear_envelope(x, rate_hz=FS) if method == "hodges_bui" else None
        on, _ = detect(method, x, env, win)
        match = MATCH_MS * 1e-3 * FS
        extra += int(sum(np.min(np.abs(every - o)) > match for o in on)) if every.size else on.size
        for t in lr:
            n += 1
            if on.size == 0 or np.min(np.abs(on - t)) > match:
                missed += 1
                continue
            errors.append((on[np.argmin(np.abs(on - t))] - t) / FS * 1e3)
    return Row(np.array(errors), missed, extra, n)


def stride_table(args, rng) -> dict:
    """Print the stride table; return {(method, baseline, shape, snr, stride): Row}."""
    rows = {}
    print()
    print(f"TA loading-response onset error by stride (ms; {args.trials} trials of 14 s per cell, "
          f"{FS:g} Hz; baseline fixed = {onsets.DEFAULT_BASELINE_WINDOW_MS:g} ms, adaptive = "
          f"stride_baseline_window_ms(stride))")
    print(f"{'method':<17}{'baseline':<14}{'shape':<9}{'SNR dB':>7}{'stride s':>9}{'window ms':>10}"
          f"{'median':>8}{'mean':>8}{'SD':>7}{'p5':>8}{'p95':>8}{'missed':>8}{'extra':>7}{'n':>6}")
    for method, baseline, shape, snr, stride in itertools.product(
            args.methods, args.baselines, args.shapes, args.stride_snr, args.strides):
        sc = Scenario(stride, shape, snr)
        win = baseline_window_ms(baseline, stride)
        row = run_cell(method, baseline, sc, args.trials, rng, silent=args.ta_silent)
        rows[(method, baseline, shape, snr, stride)] = row
        print(f"{method:<17}{baseline:<14}{shape:<9}{snr:>7g}{stride:>9g}{win:>10.0f}{row.cells()}", flush=True)
    return rows


def summary(rows: dict, min_snr_db: float = 10.0) -> None:
    """Per method and baseline, over every shape and stride at SNR >= ``min_snr_db``: the largest and the
    median |median error| of the cells, the pooled |error| median and the miss and false-burst rates,
    against the target (median |bias| <= 5 ms in every shape, misses <= 2 %)."""
    print()
    print(f"Summary at SNR >= {min_snr_db:g} dB (cells: shapes x strides x SNRs; target: every cell's "
          f"|median| <= {TARGET_BIAS_MS:g} ms, misses <= {TARGET_MISS_PCT:g} %)")
    print(f"{'method':<17}{'baseline':<14}{'max|med|':>9}{'med|med|':>9}{'pooled|e|':>10}{'miss %':>8}"
          f"{'extra %':>8}{'target':>8}")
    keys = sorted({(m, b) for m, b, *_ in rows})
    for method, baseline in keys:
        cells = [r for (m, b, _sh, snr, _st), r in rows.items() if m == method and b == baseline
                 and snr >= min_snr_db]
        if not cells:
            continue
        meds = np.array([abs(np.median(r.errors_ms)) if r.errors_ms.size else np.inf for r in cells])
        pooled = np.concatenate([r.errors_ms for r in cells]) if cells else np.array([np.nan])
        n = sum(r.n for r in cells)
        miss = 100.0 * sum(r.missed for r in cells) / max(n, 1)
        extra = 100.0 * sum(r.extra for r in cells) / max(n, 1)
        ok = meds.max() <= TARGET_BIAS_MS and miss <= TARGET_MISS_PCT
        print(f"{method:<17}{baseline:<14}{meds.max():>9.1f}{np.median(meds):>9.1f}"
              f"{np.median(np.abs(pooled)):>10.1f}{miss:>8.1f}{extra:>8.1f}{'yes' if ok else 'no':>8}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--snr", type=float, nargs="+", default=[3.0, 6.0, 10.0, 20.0, 30.0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-classic", dest="classic", action="store_false",
                    help="skip the rectangular-burst table by SNR")
    ap.add_argument("--no-stride-table", dest="stride_table", action="store_false",
                    help="skip the TA table by stride duration and onset shape")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--quick", action="store_true",
                    help="small sample (2 trials per cell, strides 0.7/1.3 s, SNR 3/10/30 dB, adaptive baseline, "
                         "no rectangular-burst table): ~2-3 min on a loaded 2-core machine")
    ap.add_argument("--no-real", dest="real", action="store_false", help="skip the real annotated files")
    ap.add_argument("--baselines", nargs="+", default=["fixed", "adaptive"],
                    help="fixed, adaptive, adaptive:FRACTION or window:MS (see baseline_window_ms)")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--stride-snr", type=float, nargs="+", default=[3.0, 6.0, 10.0, 20.0, 30.0])
    ap.add_argument("--strides", type=float, nargs="+", default=[0.7, 0.9, 1.1, 1.3])
    ap.add_argument("--ta-silent", type=float, default=None,
                    help=f"TA's silent share of the stride (default {TA_SWING[0] - TA_LOADING[1]:g})")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.strides, args.stride_snr = 2, [0.7, 1.3], [3.0, 10.0, 30.0]
        args.baselines, args.classic = ["adaptive"], False
    rng = np.random.default_rng(args.seed)
    if args.classic:
        classic_table(args, rng)
    if args.stride_table:
        summary(stride_table(args, rng))
    if args.real:
        from onset_bias_real import real_table  # noqa: PLC0415 (bench helper beside this script)

        real_table(args.methods, detect)


def classic_table(args, rng) -> None:
    print(f"{args.trials} trials x 8 bursts per SNR, {FS:g} Hz; error = detected - true onset (ms)")
    header = f"{'method':<17}{'SNR dB':>7}{'median':>8}{'mean':>8}{'SD':>7}{'p5':>8}{'p95':>8}{'missed':>8}{'extra':>7}"
    print(header)
    corr_rows = []
    results = {}
    for snr in args.snr:
        data = [synthetic_bursts(rng, snr) for _ in range(args.trials)]
        for method in METHODS:
            errors, missed, extra, predicted = [], 0, 0, []
            for x, on_true, off_true in data:
                env = emg.linear_envelope(x, rate_hz=FS)
                on, _ = detect(method, x, env)
                extra += max(0, on.size - on_true.size)
                if method == CORRECTED_METHOD:
                    mean, sd, _ = onsets.baseline_stats(env, rate_hz=FS)
                    thr = mean + onsets.DEFAULT_K_SD * sd
                for t in on_true:
                    if on.size == 0 or np.min(np.abs(on - t)) > MATCH_MS * 1e-3 * FS:
                        missed += 1
                        continue
                    e = (on[np.argmin(np.abs(on - t))] - t) / FS * 1e3
                    errors.append(e)
                    if method == CORRECTED_METHOD:
                        plateau = np.median(env[t + 200 : t + 500])
                        frac = (thr - mean) / (plateau - mean)
                        p = onsets.lowpass_step_crossing_ms(frac, rate_hz=FS) if 0 < frac < 1 else np.nan
                        predicted.append((e, p))
            e = np.array(errors) if errors else np.array([np.nan])
            results[(method, snr)] = e
            print(f"{method:<17}{snr:>7g}{np.median(e):>8.1f}{e.mean():>8.1f}{e.std():>7.1f}"
                  f"{np.percentile(e, 5):>8.1f}{np.percentile(e, 95):>8.1f}{missed:>8d}{extra:>7d}")
            if predicted:
                pr = np.array(predicted)
                resid = pr[:, 0] - pr[:, 1]
                corr_rows.append((snr, np.nanmedian(pr[:, 1]), np.nanmedian(resid), np.nanstd(resid)))
    print()
    print(f"{CORRECTED_METHOD} ({emg.DEFAULT_LOWPASS_HZ:g} Hz envelope, "
          f"k={onsets.DEFAULT_K_SD:g}, {onsets.DEFAULT_BASELINE_WINDOW_MS:g} ms quietest window):")
    print(f"{'SNR dB':>7}{'predicted bias':>16}{'residual median':>17}{'residual SD':>13}")
    for snr, p, r, s in corr_rows:
        print(f"{snr:>7g}{p:>16.1f}{r:>17.1f}{s:>13.1f}")


if __name__ == "__main__":
    main()
