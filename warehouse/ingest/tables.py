"""The batch tables one trial lands as: EMG samples, QC, plausibility, markers, plates,
GRF and ultrasound, built as Arrow tables from a :class:`Recording` (no I/O)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa

from warehouse.ingest.readers.base import Recording

log = logging.getLogger(__name__)

#: A plate whose |Fz| never exceeds this was never stepped on: its whole signal is offset.
UNLOADED_PLATE_MAX_N = 50.0
#: Samples below this fraction of the plate's peak |Fz| count as unloaded (offset estimate).
UNLOADED_FRACTION = 0.02


def repeated(value: str, n: int) -> pa.Array:
    """A string column of ``n`` copies of ``value`` (a trial's id on each of its rows), dictionary-encoded: one
    entry and a byte per row, where a plain column holds the id on every row (~16 MB of a demo trial's 20 MB of
    ``emg_samples``, held until its batch commits). DuckDB reads it as the VARCHAR it inserts."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([value], pa.string()))


def emg_samples_table(trial_id: str, channels_mv: list[np.ndarray]) -> pa.Table:
    """Long layout: (trial_id, channel, sample_index, emg_mv float32), sorted."""
    n = [len(x) for x in channels_mv]
    total = int(sum(n))
    return pa.table({
        "trial_id": repeated(trial_id, total),
        "channel": pa.array(np.repeat(np.arange(len(n), dtype=np.int16), n), pa.int16()),
        "sample_index": pa.array(np.concatenate([np.arange(k, dtype=np.int32) for k in n])
                                 if n else np.array([], np.int32), pa.int32()),
        "emg_mv": pa.array(np.concatenate(channels_mv).astype(np.float32) if n else np.array([], np.float32)),
    })


def qc_table(trial_id: str, chans: list[dict], mains_hz: float | None) -> pa.Table:
    """Signal QC of every EMG channel, on the stored samples (mV, converted once by ``harmonise``) with
    the channel's amplitude basis (electrode or amplifier output) and ADC rails (in mV) as context;
    ``rms_mv`` is therefore the RMS (about the mean) of ``emg_samples.emg_mv``."""
    from transforms import qc_trial

    rows = []
    for k, c in enumerate(chans):
        basis = c.get("amplitude_basis")
        t = qc_trial.channel_qc_table(
            np.asarray(c["data_mv"], dtype=np.float32).astype(np.float64)[None, :], labels=[c["label"]],
            rate_hz=c["rate_hz"], mains_hz=mains_hz or 50.0, units="mV", adc_range=c.get("adc_range_mv"),
            amplitude_basis=basis if basis in ("electrode_mv", "amplifier_output") else None)
        r = t.row(0, named=True)
        rows.append({"trial_id": trial_id, "channel": k, "label": c["label"], "muscle": c["muscle"],
                     "side": c["side"], "verdict": r["verdict"], "flags": r["flags"],
                     "clipping_frac": r["clipping_frac"], "mains_ratio": r["mains_ratio"],
                     "median_freq_hz": r["median_freq_hz"], "spectral_flatness": r["spectral_flatness"],
                     "rms_mv": r["rms_mv"], "dc_offset_mv": r["dc_offset_mv"],
                     "nan_frac": r["nan_frac"], "amplitude_basis": r["amplitude_basis"],
                     "qc_version": r["qc_version"]})
    return pa.Table.from_pylist(rows) if rows else pa.table({"trial_id": pa.array([], pa.string())})


def _good_emg(chans: list[dict], verdicts: list[str] | None) -> tuple[np.ndarray | None, float | None]:
    """Channels that passed signal QC (verdict not bad), at the rate of the first of them, as one array."""
    good = [c for k, c in enumerate(chans) if verdicts is None or (k < len(verdicts) and verdicts[k] != "bad")]
    if not good:
        return None, None
    rate = good[0]["rate_hz"]
    same = [np.asarray(c["data_mv"], dtype=np.float64) for c in good if c["rate_hz"] == rate]
    n = min(len(x) for x in same)
    return np.vstack([x[:n] for x in same]), rate


def plausibility_table(trial_id: str, rec: Recording, chans: list[dict], mass_kg,
                       verdicts: list[str] | None = None) -> pa.Table:
    """Cross-stream plausibility: stride period from plates/EMG, force peaks, events, durations.

    Only EMG channels that passed signal QC (``verdicts``, one per channel: not ``bad``) are used for
    the stride period: mains hum or an unconnected electrode would give a period of noise."""
    from transforms import plausibility as pl_tx
    from transforms.plausibility_events import check_events
    from transforms.plausibility_markers import check_marker_plate_agreement, foot_marker_indices

    findings = []
    fz = [np.abs(p.force_n[2]) for p in rec.plates if p.force_n.size and np.nanmax(np.abs(p.force_n[2])) > 40]
    emg, emg_rate = _good_emg(chans, verdicts)
    try:
        findings += pl_tx.check_sampling_rates(
            plate_force_z_n=fz[0] if fz else None, analog_rate_hz=rec.plates[0].rate_hz if fz else None,
            emg=emg, emg_rate_hz=emg_rate)
        foot = foot_marker_indices(rec.marker_labels) if rec.marker_labels else []
        loaded = [p for p in rec.plates if p.force_n.size and np.nanmax(np.abs(p.force_n[2])) > 40]
        if loaded and foot and rec.markers_mm is not None and rec.point_rate_hz and all(
                p.corners_mm is not None and np.shape(p.corners_mm) == (3, 4) for p in loaded):
            n = min(p.force_n.shape[1] for p in loaded)
            corners = [p.corners_mm for p in loaded]
            feet = np.transpose(rec.markers_mm[:, foot, :], (2, 1, 0))  # 3 x markers x frames
            findings += check_marker_plate_agreement(  # signed lab-frame Fz: positive when loaded
                feet, np.vstack([p.force_n[2][:n] for p in loaded]), point_rate_hz=rec.point_rate_hz,
                analog_rate_hz=rec.plates[0].rate_hz, plate_corners_mm=np.stack(corners))
        if mass_kg and fz:
            findings += pl_tx.check_force_peaks(np.vstack([f[:min(map(len, fz))] for f in fz]),
                                                mass_kg=float(mass_kg))
        if any(e.side in ("L", "R") for e in rec.events):
            findings += check_events([(e.side, {'foot_strike': 'Foot Strike', 'foot_off': 'Foot Off'}[e.event], e.time_s)
                                      for e in rec.events if e.side in ("L", "R")])
        durations = {}
        if chans:
            durations["emg"] = len(chans[0]["data_mv"]) / chans[0]["rate_hz"]
        if rec.markers_mm is not None and rec.point_rate_hz:
            durations["markers"] = rec.markers_mm.shape[0] / rec.point_rate_hz
        if rec.plates:
            durations["plates"] = rec.plates[0].force_n.shape[1] / rec.plates[0].rate_hz
        if len(durations) > 1:
            findings += pl_tx.check_durations(durations)
    except (ValueError, TypeError) as exc:
        log.info("%s plausibility: %s", trial_id, exc)
    findings += [pl_tx.Finding(code, sev, msg, {}) for code, sev, msg in rec.findings]
    df = pl_tx.findings_table(findings)
    if df.is_empty():
        return pa.table({"trial_id": pa.array([], pa.string())})
    df = df.unique(subset=["code"], keep="first", maintain_order=True)
    return df.with_columns(__import__("polars").lit(trial_id).alias("trial_id")).to_arrow()


def ultrasound_tables(trial_id: str, rec: Recording) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Fascicle series, scalar measurements, and their summaries (whole recording; shear modulus)."""
    from transforms import ultrasound as us

    empty = pa.table({"trial_id": pa.array([], pa.string())})
    series, metrics = [], []
    for u in rec.ultrasound:
        n = len(u.time_s)
        series.append(pa.table({
            "trial_id": [trial_id] * n, "region": [u.region] * n, "muscle": [u.muscle] * n, "side": [u.side] * n,
            "frame": pa.array(np.arange(n, dtype=np.int32)), "time_s": pa.array(u.time_s, pa.float64()),
            "fascicle_length_mm": pa.array(u.fascicle_length_mm, pa.float64(), from_pandas=True),
            "pennation_deg": pa.array(u.pennation_deg, pa.float64(), from_pandas=True),
            "thickness_mm": pa.array(u.thickness_mm if u.thickness_mm is not None else np.full(n, np.nan),
                                     pa.float64(), from_pandas=True)}))
        ok = np.isfinite(u.time_s)
        if ok.sum() >= 2:
            t = np.asarray(u.time_s)[ok]
            df = us.ultrasound_interval_metrics(t, boundaries_s=np.array([[t[0], t[-1]]]),
                                                fascicle_length_mm=np.asarray(u.fascicle_length_mm)[ok],
                                                pennation_angle_deg=np.asarray(u.pennation_deg)[ok])
            for r in df.iter_rows(named=True):
                metrics.append({"trial_id": trial_id, "region": u.region, "muscle": u.muscle, "side": u.side,
                                "interval": 0, "variable": r["variable"], "start_s": r["start_s"],
                                "end_s": r["end_s"], "min": r["min"], "max": r["max"], "mean": r["mean"],
                                "excursion": r["excursion"]})
    meas = [{"trial_id": trial_id, "muscle": m.muscle, "side": m.side, "metric": m.metric, "value": m.value,
             "unit": m.unit, "condition": m.condition} for m in rec.measurements]
    for m in rec.measurements:  # shear modulus mu = rho c^2 from a shear-wave speed
        if m.metric == "shear_wave_speed_m_per_s" and np.isfinite(m.value):
            mu = float(us.shear_modulus_kpa(m.value))
            metrics.append({"trial_id": trial_id, "region": m.muscle or "unknown", "muscle": m.muscle,
                            "side": m.side, "interval": 0, "variable": "shear_modulus_kpa", "start_s": None,
                            "end_s": None, "min": mu, "max": mu, "mean": mu, "excursion": 0.0})
    return (pa.concat_tables(series) if series else empty, pa.Table.from_pylist(meas) if meas else empty,
            pa.Table.from_pylist(metrics) if metrics else empty)


def marker_names(labels: list[str], n: int) -> list[str]:
    """Distinct marker names: blanks become point_N, duplicates get #2, #3..."""
    out, seen = [], {}
    for i in range(n):
        name = (labels[i].strip() if i < len(labels) else "") or f"point_{i + 1}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def markers_table(trial_id: str, rec: Recording) -> pa.Table:
    xyz = rec.markers_mm
    if xyz is None or not rec.point_rate_hz or xyz.size == 0:
        return pa.table({"trial_id": pa.array([], pa.string())})
    n_frames, n_markers, _ = xyz.shape
    names = marker_names(rec.marker_labels, n_markers)
    frames = np.arange(n_frames, dtype=np.int32)
    flat = np.transpose(xyz, (1, 0, 2)).reshape(-1, 3).astype(np.float32)  # marker-major
    return pa.table({
        "trial_id": repeated(trial_id, n_frames * n_markers),
        "marker": pa.array(np.repeat(np.array(names, dtype=object), n_frames), pa.string()),
        "frame": pa.array(np.tile(frames, n_markers)),
        "time_s": pa.array(np.tile(frames / rec.point_rate_hz, n_markers)),
        "x_mm": pa.array(flat[:, 0], from_pandas=True), "y_mm": pa.array(flat[:, 1], from_pandas=True),
        "z_mm": pa.array(flat[:, 2], from_pandas=True),
    })


def plate_offsets(force_n: np.ndarray) -> np.ndarray:
    """Per-axis offset of a plate from its unloaded samples (3-vector, N)."""
    fz = np.abs(force_n[2])
    if not np.isfinite(fz).any():
        return np.zeros(3)
    peak = np.nanmax(fz)
    idle = fz <= (peak if peak < UNLOADED_PLATE_MAX_N else UNLOADED_FRACTION * peak + 1.0)
    if peak >= UNLOADED_PLATE_MAX_N and idle.sum() < 10:
        return np.zeros(3)  # a treadmill belt that never unloads: no offset estimate
    return np.nanmedian(force_n[:, idle], axis=1)


def grf_table(trial_id: str, rec: Recording) -> pa.Table:
    """GRF in the lab frame (offsets already removed by the caller, recorded in force_plates)."""
    parts = []
    for p in rec.plates:
        n = p.force_n.shape[1]
        idx = np.arange(n, dtype=np.int32)
        parts.append(pa.table({
            "trial_id": repeated(trial_id, n),
            "plate": pa.array(np.full(n, p.plate, np.int16)), "sample_index": pa.array(idx),
            "time_s": pa.array(idx / p.rate_hz if p.rate_hz else np.zeros(n)),
            "force_x_n": pa.array(p.force_n[0].astype(np.float32)),
            "force_y_n": pa.array(p.force_n[1].astype(np.float32)),
            "force_z_n": pa.array(p.force_n[2].astype(np.float32)),
            "cop_x_mm": pa.array(p.cop_mm[0].astype(np.float32)),
            "cop_y_mm": pa.array(p.cop_mm[1].astype(np.float32)),
            "free_moment_nmm": pa.array(np.asarray(p.free_moment_nmm, np.float32)),
        }))
    if not parts:
        return pa.table({"trial_id": pa.array([], pa.string())})
    return pa.concat_tables(parts)


def trial_checks(trial_id: str, rec: Recording, chans: list[dict], mains_hz: float | None,
                 mass_kg) -> tuple[pa.Table, pa.Table]:
    """``(channel_qc, plausibility)`` of one trial: QC of every EMG channel, then the cross-stream plausibility
    (whose EMG stride period uses only the channels QC did not mark bad)."""
    qc = qc_table(trial_id, chans, mains_hz)
    verdicts = qc.column("verdict").to_pylist() if "verdict" in qc.column_names else None
    return qc, plausibility_table(trial_id, rec, chans, mass_kg, verdicts)


class _Checked:
    def __init__(self, tables: tuple[pa.Table, pa.Table]):
        self._tables = tables

    def result(self) -> tuple[pa.Table, pa.Table]:
        return self._tables


#: The tables of a trial's checks (:func:`trial_checks`), in its batches.
CHECK_TABLES = ("channel_qc", "plausibility")


def trial_batches(trial_id: str, *, site: str, session, sha: str, rec: Recording, chans: list[dict],
                  ingested_at, mains_hz: float | None, mass_kg, start_checks=None, defer_checks: bool = False):
    """Every table row one trial lands as, by table name (plate offsets are removed from ``rec`` here).

    ``start_checks(trial_id, rec, chans, mains_hz, mass_kg)`` begins :func:`trial_checks` elsewhere (the ingest's
    ``warehouse.ingest.check_worker.start``) and returns what gives them by ``result()``, collected once the other
    tables are built; None: they run here. ``defer_checks``: return ``(batches without the checks' tables,
    what gives them)``; :func:`check_batches` turns its ``result()`` into those tables."""
    n_markers = len(rec.marker_labels)
    frame = rec.frame or {}
    trial = pa.table({
        "trial_id": [trial_id], "site_id": [site], "subject_id": [session.subject], "session_id": [session.id],
        "sha256": [sha], "format": [rec.format], "vendor": [rec.vendor], "software": [rec.software],
        "processor": [rec.processor], "duration_s": [float(rec.duration_s)],
        "point_rate_hz": pa.array([rec.point_rate_hz], pa.float64()),
        "analog_rate_hz": pa.array([rec.analog_rate_hz], pa.float64()),
        "first_frame": pa.array([rec.first_frame], pa.int32()),
        "n_emg_channels": pa.array([len(chans)], pa.int32()),
        "n_force_plates": pa.array([len(rec.plates)], pa.int32()),
        "n_markers": pa.array([n_markers], pa.int32()), "ingested_at": [ingested_at],
        "frame_rotation": [json.dumps(frame["rotation"]) if frame.get("rotation") else None],
        "vertical_axis_file": [frame.get("vertical_axis_file")], "frame_source": [frame.get("source")],
    })
    offsets = []
    for p in rec.plates:  # remove each plate's unloaded offset once, before anything uses the forces
        off = plate_offsets(p.force_n) if p.force_n.size else np.zeros(3)
        p.force_n = p.force_n - off[:, None] if p.force_n.size else p.force_n
        offsets.append(float(off[2]))
    args = (trial_id, rec, chans, mains_hz, mass_kg)
    checks = start_checks(*args) if start_checks is not None else _Checked(trial_checks(*args))
    channels = pa.table({
        "trial_id": [trial_id] * len(chans),
        "channel": pa.array(range(len(chans)), pa.int16()),
        "label": [c["label"] for c in chans], "muscle": [c["muscle"] for c in chans],
        "side": [c["side"] for c in chans], "unit": ["mV"] * len(chans),
        "source_unit": [c["source_unit"] for c in chans],
        "rate_hz": pa.array([c["rate_hz"] for c in chans], pa.float64()),
        "n_samples": pa.array([len(c["data_mv"]) for c in chans], pa.int32()),
        "mapping": [c["mapping"] for c in chans],
        "gain": pa.array([c.get("gain") for c in chans], pa.float64()),
        "amplitude_basis": [c.get("amplitude_basis") for c in chans],
    })
    samples = emg_samples_table(trial_id, [c["data_mv"] for c in chans])
    plates = pa.table({
        "trial_id": [trial_id] * len(rec.plates),
        "plate": pa.array([p.plate for p in rec.plates], pa.int16()),
        "plate_type": pa.array([p.plate_type for p in rec.plates], pa.int16()),
        "rate_hz": pa.array([p.rate_hz for p in rec.plates], pa.float64()),
        "peak_force_z_n": pa.array([float(np.nanmax(np.abs(p.force_n[2]))) if p.force_n.size else None
                                    for p in rec.plates], pa.float64()),
        "offset_force_z_n": pa.array(offsets, pa.float64()),
    })
    grf = grf_table(trial_id, rec)
    markers = markers_table(trial_id, rec)
    us_series, us_meas, us_metrics = ultrasound_tables(trial_id, rec)
    events = pa.table({
        "trial_id": [trial_id] * len(rec.events), "side": [e.side for e in rec.events],
        "event": [e.event for e in rec.events], "time_s": pa.array([e.time_s for e in rec.events], pa.float64()),
        "source": [e.source for e in rec.events], "plate": pa.array([None] * len(rec.events), pa.int16()),
        "reason": [None if e.side != "U" else "the event's label and context name no side" for e in rec.events],
    })
    batches = {"trials": trial, "emg_channels": channels, "emg_samples": samples, "force_plates": plates,
               "grf": grf, "markers": markers, "gait_events": events,
               "ultrasound_series": us_series, "ultrasound_measurements": us_meas, "ultrasound_metrics": us_metrics}
    if defer_checks:
        return batches, checks
    return {**batches, **check_batches(checks.result())}


def check_batches(checked: tuple[pa.Table, pa.Table]) -> dict[str, pa.Table]:
    """The checks' tables by name, from :func:`trial_checks`' result."""
    return dict(zip(CHECK_TABLES, checked))
