"""Real files with annotated foot strikes for ``bench/onset_bias.py``: tibialis anterior's
loading-response burst per annotated strike, for every onset method.

Files (``../shared/fixtures``): ``synergies/derived/ID0012_TW_01_*`` (treadmill walk, right TA @1 kHz,
6 annotated touchdowns) and ``gaitalytics/test_small.c3d`` (overground, R/L TA @1 kHz, 3 annotated strikes
per side). There is no true onset in a real file: a strike counts as **missed** when no detected burst
is active at it or starts within ``WINDOW_MS[1]`` after it (TA is active at every strike in walking, often
continuously from late swing), and the table gives that burst's onset relative to the strike (median, SD)
and the other bursts (``extra``: swing bursts are real, so this is not a false-burst count).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transforms.onsets_baseline import stride_baseline_window_ms

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
#: A loading-response burst may start up to WINDOW_MS[1] after the annotated strike, ms.
WINDOW_MS = (None, 100.0)


def _records() -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    """(name, TA samples, rate Hz, annotated strikes s from the first sample)."""
    out = []
    syn = FIXTURES / "synergies" / "derived"
    if (syn / "ID0012_TW_01_raw_emg.csv").exists():
        data = np.genfromtxt(syn / "ID0012_TW_01_raw_emg.csv", delimiter=",", names=True)
        t = data["time"]
        strikes = np.genfromtxt(syn / "ID0012_TW_01_cycles.csv", delimiter=",", names=True)["touchdown_s"]
        out.append(("ID0012_TW_01 R TA", data["TA"].astype(float), 1.0 / np.median(np.diff(t)), strikes - t[0]))
    small = FIXTURES / "gaitalytics" / "test_small.c3d"
    if small.exists():
        import ezc3d  # noqa: PLC0415

        c = ezc3d.c3d(str(small))
        labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
        rate = float(c["parameters"]["ANALOG"]["RATE"]["value"][0])
        t0 = (c["parameters"]["TRIAL"]["ACTUAL_START_FIELD"]["value"][0] - 1) / float(
            c["parameters"]["POINT"]["RATE"]["value"][0])
        ev = c["parameters"]["EVENT"]
        times = np.asarray(ev["TIMES"]["value"])[1]
        for side, ctx in (("R", "Right"), ("L", "Left")):
            st = np.array([tt for tt, lab, cx in zip(times, ev["LABELS"]["value"], ev["CONTEXTS"]["value"])
                           if lab == "Foot Strike" and cx == ctx]) - t0
            x = c["data"]["analogs"][0, labels.index(f"Voltage.{side}TA")].astype(float)
            out.append((f"test_small {side} TA", x, rate, np.sort(st)))
    return out


def real_table(methods, detect) -> None:
    """Print, per real record and method: strikes, missed, onset re strike (median, SD) and extra onsets."""
    recs = _records()
    if not recs:
        print("\n(real fixtures not found: skipped)")
        return
    print()
    print(f"Real files, tibialis anterior: the burst active at each annotated strike or starting up to "
          f"{WINDOW_MS[1]:g} ms after it; its onset re the strike (ms, negative = before)")
    print(f"{'record':<20}{'method':<17}{'strikes':>8}{'missed':>7}{'median':>8}{'SD':>7}{'extra':>7}")
    for name, x, rate, strikes in recs:
        stride = float(np.median(np.diff(strikes))) if strikes.size > 1 else None
        win = stride_baseline_window_ms(stride)
        for method in methods:
            on, off = detect(method, x, None, win, rate)
            on_s, off_s = on / rate, off / rate
            rel, missed = [], 0
            for s in strikes:
                # the burst active at the strike or starting within WINDOW_MS[1] after it
                hit = (on_s <= s + WINDOW_MS[1] / 1e3) & (off_s >= s)
                if hit.any():
                    rel.append((on_s[hit][0] - s) * 1e3)
                else:
                    missed += 1
            rel = np.array(rel) if rel else np.array([np.nan])
            extra = on.size - (strikes.size - missed)
            print(f"{name:<20}{method:<17}{strikes.size:>8d}{missed:>7d}{np.median(rel):>8.1f}{np.std(rel):>7.1f}"
                  f"{extra:>7d}", flush=True)
