"""The metric registry: what each published metric measures, in which unit and on which scale, and
therefore which asymmetry and variability statistics apply to it. No I/O.

Scales (Stevens): a **ratio** scale has a true zero and positive values (peak amplitude, iEMG, impulse,
stance time), so ratios such as Robinson's SI, Zifchock's SA and the coefficient of variation mean
something. **Timing** metrics are positions within the gait cycle relative to foot strike (onsets, offsets,
time of peak): their zero is a convention, they can be negative, and a ratio of two onsets means nothing,
so asymmetry is a signed difference (ms or % of the cycle) and variability an SD. Timing in % of the cycle
is **circular** (100 % = 0 %): its differences are wrapped into (-50, 50] %.

Tables take units and statistics from here (``asymmetry``, ``variability``, the report); a metric missing
from the registry is a programming error, never silently given a ratio statistic.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Scales a metric can have.
SCALES = ("ratio", "timing")


@dataclass(frozen=True)
class Metric:
    """One published metric.

    ``asymmetry`` is ``"si"`` (Robinson SI and Zifchock SA, plus the signed difference) or ``"diff"``
    (signed R - L difference only); ``variability`` is ``"cv"`` (SD / mean x 100) or ``"sd"`` (SD in
    ``unit``); ``period`` is the wrap-around of a circular timing metric (in ``unit``), else None.
    """

    name: str
    unit: str
    scale: str
    description: str
    period: float | None = None

    @property
    def asymmetry(self) -> str:
        return "si" if self.scale == "ratio" else "diff"

    @property
    def variability(self) -> str:
        return "cv" if self.scale == "ratio" else "sd"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("peak", "mV", "ratio", "Peak of the linear envelope in the cycle."),
    Metric("iemg", "mV s", "ratio", "Integrated linear envelope over the cycle."),
    Metric("envelope", "mV", "ratio", "Time-normalised linear envelope (variability: Winter's CV)."),
    Metric("stance_time_s", "s", "ratio", "Stance duration (foot strike to foot off)."),
    Metric("grf_peak_n", "N", "ratio", "Peak vertical ground reaction force in stance."),
    Metric("grf_impulse_ns", "N s", "ratio", "Vertical impulse in stance."),
    Metric("onset_ms", "ms", "timing", "First-burst onset after the ipsilateral foot strike (median of cycles)."),
    Metric("offset_ms", "ms", "timing", "First-burst offset after the ipsilateral foot strike (median of cycles)."),
    Metric("onset_pct", "% cycle", "timing", "First-burst onset in % of the gait cycle.", period=100.0),
    Metric("offset_pct", "% cycle", "timing", "First-burst offset in % of the gait cycle.", period=100.0),
    Metric("time_of_peak_pct", "% cycle", "timing", "Time of the envelope peak in % of the cycle.", period=100.0),
)}


def metric(name: str, /) -> Metric:
    """The registry entry of ``name``.

    Raises
    ------
    KeyError
        If the metric is not registered (every published metric must be).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in schemas.metrics.METRICS; register its unit and scale") from None


def ratio_metrics() -> tuple[str, ...]:
    """Names of the metrics SI, SA and CV apply to."""
    return tuple(n for n, m in METRICS.items() if m.scale == "ratio")
