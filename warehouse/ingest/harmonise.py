"""Channel harmonisation: which analog channels are EMG, which muscle and side each
records (vocabulary aliases, descriptions, the site manifest's ``channels:``), and the
conversion of their samples to millivolts, once, at the electrode when the amplifier gain is
known (manifest ``gain`` per site, session or channel) -- each channel says which
(``amplitude_basis``: ``electrode_mv`` or ``amplifier_output``).

One rule decides what looks like EMG (:func:`decide`), for the nightly ingest, ``myomap manifest
check`` and ``myomap manifest init`` alike: every analog channel ends as stored EMG (``emg``),
ignored by the manifest (``ignored``), EMG that could not be mapped or converted (``unresolved``:
a quarantine record, never stored, never silently dropped), or not EMG (``not_emg``, with why).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from schemas import vocab
from schemas.manifest_schema import TODO
from warehouse.ingest.readers.base import AnalogChannel, Recording, emg_unit_factor

#: Analog labels that are never EMG, whatever their description says (unless the manifest maps them).
NOT_EMG = re.compile(r"foot ?switch|fsw|trigger|sync|force|moment|acc[\. ]|gyro|mag[\. ]|torque|angle", re.I)
#: Spectral check of an unlabelled voltage channel: sampled at least this fast (Hz) ...
EMG_MIN_RATE_HZ = 400.0
#: ... with its median frequency in this band (Hz; surface EMG: ~50-150 Hz; white noise: rate / 4) ...
EMG_MEDIAN_FREQUENCY_HZ = (30.0, 200.0)
#: ... and at most this fraction of its power below 15 Hz (footswitches, sync pulses, movement).
EMG_MAX_LOW_FRACTION = 0.3
#: Seconds of signal the spectral check looks at.
EMG_SPECTRUM_SECONDS = 20.0

EMG, IGNORED, UNRESOLVED, NOT_EMG_KIND = "emg", "ignored", "unresolved", "not_emg"


@dataclass(frozen=True)
class Decision:
    """What became of one analog channel, and why (``source``: manifest, alias, description, spectrum...)."""

    label: str
    kind: str  # emg | ignored | unresolved | not_emg
    muscle: str | None = None
    side: str | None = None
    source: str = ""
    why: str = ""
    suggestions: tuple[str, ...] = ()


def emg_like_spectrum(x, rate_hz: float) -> bool:
    """True when ``x`` has the spectrum of surface EMG (see ``EMG_*`` above); False when too short or flat."""
    if rate_hz < EMG_MIN_RATE_HZ:
        return False
    x = np.asarray(x, dtype=np.float64)[: int(rate_hz * EMG_SPECTRUM_SECONDS)]
    x = x[np.isfinite(x)]
    if len(x) < rate_hz / 2:
        return False
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate_hz)
    total = float(spec.sum())
    if not total > 0:
        return False
    cum = np.cumsum(spec) / total
    mdf = float(freqs[int(np.searchsorted(cum, 0.5))])
    low = float(spec[freqs < 15.0].sum()) / total
    return EMG_MEDIAN_FREQUENCY_HZ[0] <= mdf <= EMG_MEDIAN_FREQUENCY_HZ[1] and low <= EMG_MAX_LOW_FRACTION


def looks_emg(a: AnalogChannel, res: vocab.LabelResolution) -> tuple[bool, str]:
    """The one "looks like EMG" rule: ``(verdict, why)`` from the label, description, unit, rate and spectrum."""
    text = f"{a.label} {a.description}".lower()
    if NOT_EMG.search(a.label):
        return False, f"label '{a.label}' names a non-EMG signal (force, footswitch, sync, accelerometer...)"
    if "emg" in text:
        return True, "label or description says EMG"
    if res.muscle is not None:
        return True, "label names a muscle"
    volts = emg_unit_factor(a.unit) is not None
    if res.side is not None and volts:
        return True, "side-prefixed voltage channel"
    if volts and emg_like_spectrum(a.data, a.rate_hz):
        return True, "voltage channel with an EMG spectrum"
    if not volts:
        return False, f"unit '{a.unit}' is not a voltage"
    return False, f"voltage channel without a muscle name and without an EMG spectrum ({a.rate_hz:g} Hz)"


def decide(a: AnalogChannel, channel_map: dict | None = None, *, default_side: str = "U") -> Decision:
    """Decide what one analog channel is (see the module docstring); ``channel_map`` is the manifest's
    (``Manifest.channels_for(session)``), ``default_side`` the side of a muscle named without one."""
    mine = (channel_map or {}).get(a.label) or {}
    if "ignore" in mine:
        return Decision(a.label, IGNORED, source="manifest", why=str(mine["ignore"]))
    if mine.get("muscle") is not None:
        if TODO in (mine.get("muscle"), mine.get("side")):
            res = vocab.resolve_label(a.label)
            return Decision(a.label, UNRESOLVED, source="manifest", suggestions=res.suggestions,
                            why="muscle/side left TODO in the manifest")
        return Decision(a.label, EMG, mine["muscle"], mine["side"], source="manifest")
    res = vocab.resolve_label(a.label)
    via = "alias"
    if not res.resolved and a.description.strip():  # e.g. label "RTRE", description "Rt rectus"
        by_desc = vocab.resolve_label(a.description)
        if by_desc.resolved or (by_desc.muscle and not res.muscle):
            res, via = by_desc, "description"
    emg, why = looks_emg(a, res)
    if res.resolved:
        return Decision(a.label, EMG, res.muscle, res.side, source=via)
    if res.muscle is not None and emg:
        return Decision(a.label, EMG, res.muscle, default_side, source=f"{via}; side {default_side} (label names none)")
    if emg:
        return Decision(a.label, UNRESOLVED, source=via, suggestions=res.suggestions, why=why)
    return Decision(a.label, NOT_EMG_KIND, why=why)


def blank_label(index: int) -> str:
    """How a channel with a blank label is named in its quarantine record (1-based analog position)."""
    return f"<blank label: analog channel {index + 1}>"


def _unresolved_message(d: Decision) -> str:
    hint = f" Closest: {', '.join(d.suggestions)}." if d.suggestions else ""
    if d.source == "manifest":
        return (f"Channel '{d.label}' is left TODO in the manifest: it was skipped, the rest of the trial kept.{hint} "
                f"Set its muscle and side (U when the label names none) or `ignore` under 'channels:'.")
    return (f"Channel '{d.label}' looks like EMG ({d.why}) but is not mapped to a muscle.{hint} Add it under "
            "'channels:' in the site manifest ({muscle, side} or ignore) to ingest or silence it.")


def harmonise(rec: Recording, overrides: dict, *, emg_context: dict | None = None, default_side: str = "U",
              decisions: list | None = None) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Pick the EMG channels, map labels to (muscle, side), convert to mV (divided by the gain when known).

    ``overrides`` is the manifest's channel map for the file (``Manifest.channels_for(session)``);
    ``emg_context`` is ``Manifest.emg_context(session)``: ``gain`` and ``amplitude_basis`` for the
    session, and per channel label. Returns the EMG channels (dicts with ``data_mv``, ``gain``,
    ``amplitude_basis``, ``adc_range_mv``...) and per-channel issues ``(label, reason_code, message)``
    for EMG-looking channels that could not be mapped or converted (flagged, never guessed).
    ``decisions``, when given, receives the :class:`Decision` of every analog channel.
    """
    from transforms.qc_trial import amplitude_basis  # scipy: imported when converting, not by `manifest check`

    ctx = emg_context or {}
    per_channel = ctx.get("channels") or {}
    chans, issues = [], []
    for i, a in enumerate(rec.analogs):
        if i in rec.plate_channel_indices:
            continue
        d = decide(a, overrides, default_side=default_side)
        if decisions is not None:
            decisions.append(d)
        if d.kind == UNRESOLVED:  # a blank label is named by its position (one record per channel)
            issues.append((a.label or blank_label(i), "unmapped_channel", _unresolved_message(d)))
        if d.kind != EMG:
            continue
        factor = emg_unit_factor(a.unit)
        if factor is None:
            issues.append((a.label, "unknown_unit", f"Channel '{a.label}' has unit '{a.unit}', which is not V, mV "
                           "or uV; state the unit in the manifest or re-export."))
            continue
        mine = per_channel.get(a.label) or {}
        gain = mine.get("gain") if mine.get("gain") is not None else ctx.get("gain")
        basis = amplitude_basis(a.data, unit=a.unit, gain=gain,
                                declared=mine.get("amplitude_basis") or ctx.get("amplitude_basis"))
        scale = factor / (gain or 1.0)  # file unit -> mV (at the electrode when the gain is known)
        rails = None if a.adc_range is None else (a.adc_range[0] * scale, a.adc_range[1] * scale)
        chans.append({"label": a.label, "muscle": d.muscle, "side": d.side, "source_unit": a.unit,
                      "rate_hz": a.rate_hz, "data_mv": a.data * scale, "mapping": d.source.split(";")[0],
                      "gain": float(gain) if gain is not None else None, "amplitude_basis": basis,
                      "adc_range_mv": rails})
    return chans, issues
