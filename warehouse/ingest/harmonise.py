"""Channel harmonisation: which analog channels are EMG, which muscle and side each
records (vocabulary aliases, descriptions, the site manifest's ``channels:``), and the
conversion of their samples to millivolts, once, at the electrode when the amplifier gain is
known (manifest ``gain`` per site, session or channel) -- each channel says which
(``amplitude_basis``: ``electrode_mv`` or ``amplifier_output``)."""
from __future__ import annotations

import re

from schemas import vocab
from transforms.qc_trial import amplitude_basis
from warehouse.ingest.readers.base import Recording, emg_unit_factor

#: Analog labels that are never EMG, whatever their description says.
NOT_EMG = re.compile(r"foot ?switch|fsw|trigger|sync|force|moment|acc[\. ]|gyro|mag[\. ]|torque|angle", re.I)


def harmonise(rec: Recording, overrides: dict, *,
              emg_context: dict | None = None) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Pick the EMG channels, map labels to (muscle, side), convert to mV (divided by the gain when known).

    ``emg_context`` is the manifest's ``Manifest.emg_context(session)``: ``gain`` and
    ``amplitude_basis`` for the session, and per channel label. Returns the EMG channels (dicts with
    ``data_mv``, ``gain``, ``amplitude_basis``, ``adc_range_mv``...) and per-channel issues
    ``(label, reason_code, message)`` for EMG-looking channels that could not be mapped or converted
    (flagged, never guessed).
    """
    ctx = emg_context or {}
    per_channel = ctx.get("channels") or {}
    overrides = {k: v for k, v in (overrides or {}).items() if isinstance(v, dict) and v.get("muscle")}
    chans, issues = [], []
    for i, a in enumerate(rec.analogs):
        if i in rec.plate_channel_indices:
            continue
        res = vocab.resolve_label(a.label, overrides)
        via = "manifest" if overrides and a.label in overrides else "alias"
        side_seen = res.side
        if not res.resolved and a.description.strip():  # e.g. label "RTRE", description "Rt rectus"
            by_desc = vocab.resolve_label(a.description)
            side_seen = side_seen or by_desc.side
            if by_desc.resolved:
                res, via = by_desc, "description"
        # EMG-looking: says EMG, or a side-prefixed voltage channel beside the EMG (e.g. 'LGRF' in Gait.c3d)
        looks_emg = (("emg" in (a.label + " " + a.description).lower()
                      or (side_seen is not None and emg_unit_factor(a.unit) is not None))
                     and not NOT_EMG.search(a.label))
        if not res.resolved:
            if looks_emg or res.muscle:
                hint = (f" Closest: {', '.join(res.suggestions)}." if res.suggestions else "")
                issues.append((a.label, "unmapped_channel",
                               f"Channel '{a.label}' is not mapped to a muscle and side.{hint} Add it under "
                               "'channels:' in the site manifest to ingest it."))
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
        chans.append({"label": a.label, "muscle": res.muscle, "side": res.side, "source_unit": a.unit,
                      "rate_hz": a.rate_hz, "data_mv": a.data * scale, "mapping": via,
                      "gain": float(gain) if gain is not None else None, "amplitude_basis": basis,
                      "adc_range_mv": rails})
    return chans, issues
