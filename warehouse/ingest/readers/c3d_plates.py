"""Force plates of a C3D file, computed as ezc3d computes them, without ezc3d's per-frame Python copy.

ezc3d's force-platform module (C++, ``ezc3d::Modules::ForcePlatforms``) computes each plate's force,
moment, centre of pressure and free moment per analog frame. Its Python wrapper
(``ezc3d.c3d(..., extract_forceplat_data=True)``) then copies those vectors into numpy one frame at a
time: ~0.7 s of a ~1 s read for a 20 s, 2-plate trial at 2 kHz. Here ezc3d's C++ module still parses the
plates (type, calibration matrix, origin, corners: the same rules and the same refusals), and the per-frame
equations of its ``extractData`` for plate types 2 and 4 (AMTI, Bertec, treadmills) are applied to the whole analog block at once.
Each plate configuration (type, channels, calibration, origin, corners) is checked against ezc3d's own
per-frame values at a few frames the first time this process meets it (materialising ezc3d's values costs
~0.1 s per plate, as much as the rest of the read); a plate whose values differ (another ezc3d version,
another type) is copied ezc3d's way, so the result is always ezc3d's.
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np

log = logging.getLogger(__name__)

#: Plate types whose equations are applied here (others are copied from ezc3d frame by frame).
VECTORISED_TYPES = (2, 4)
#: Frames compared with ezc3d's own values per plate (first, last and evenly spaced between).
CHECK_FRAMES = 7
#: Largest difference accepted in that comparison, relative to the plate's largest |value| (rounding).
CHECK_RTOL = 1e-9
#: Plate configurations already checked in this process (the equations are the same for every frame and file).
_VERIFIED: set[tuple] = set()
#: Per :func:`_parameters_key`: the constants of every plate of a file whose plates were all vectorised and
#: checked. A file with the same key is computed from them without ezc3d's force-plate module, which
#: extracts every frame of every plate in C++ (~0.1 s per file, as long as the rest of the read).
_KNOWN: dict[str, list[dict]] = {}


def platforms(c) -> list[dict]:
    """``[{"force", "center_of_pressure", "Tz", "corners"}, ...]`` (3 x n arrays in the file's units, as
    ``ezc3d.c3d(..., extract_forceplat_data=True)["data"]["platform"]``) for an ``ezc3d.c3d`` opened
    without force-plate extraction.

    Raises
    ------
    Exception
        Whatever ezc3d raises on plates it cannot extract (types 5-7, a malformed FORCE_PLATFORM group):
        the caller reads the file without plates, as with ezc3d's own extraction.
    """
    from ezc3d import ezc3d as swig

    analogs = np.asarray(c["data"]["analogs"], dtype=np.float64)[0]  # channels x frames
    known_key = _parameters_key(c, analogs.shape)
    known = _KNOWN.get(known_key)
    if known is not None:  # the same parameters as a file whose every plate was vectorised and checked
        return [{**_apply(k, analogs), "corners": k["corners"]} for k in known]
    plates = swig.ForcePlatforms(c.c3d_swig).forcePlatforms()
    if not plates:
        return []
    channels = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"])
    if channels.ndim == 1:  # one plate
        channels = channels.reshape(-1, 1)
    out, constants = [], []
    for idx, pf in enumerate(plates):
        corners = np.column_stack([v.to_array()[:, 0] for v in pf.corners()]) if pf.corners() else np.zeros((3, 0))
        plate = None
        if pf.type() in VECTORISED_TYPES and channels.ndim == 2 and channels.shape[1] > idx:
            ch = channels[:, idx].astype(int) - 1
            plate = _vectorised(pf, analogs, ch)
            key = _configuration(pf, channels[:, idx], corners) if plate is not None else None
            if key is not None and key not in _VERIFIED:
                if _matches_ezc3d(pf, plate):
                    _VERIFIED.add(key)
                else:
                    log.warning("force plate %d (type %d): vectorised values differ from ezc3d's; copied frame "
                                "by frame instead", idx + 1, pf.type())
                    plate = None
            if plate is not None:
                constants.append({**_constants(pf, ch, analogs), "corners": corners})
        if plate is None:
            plate = _copied(pf)
        plate["corners"] = corners
        out.append(plate)
    if len(constants) == len(out) and analogs.shape[1]:  # every plate vectorised and checked, on real frames
        _KNOWN[known_key] = constants
    return out


def _parameters_key(c, analog_shape) -> str:
    """What ezc3d's force-plate module reads from a file besides the analog samples: the FORCE_PLATFORM
    group, POINT:UNITS, ANALOG:UNITS and ANALOG:USED (their values), and the analog block's channel count
    and whether it has frames. Two files with the same key get the same plate constants from ezc3d."""
    params = c["parameters"]
    parts = []
    for group, names in (("FORCE_PLATFORM", None), ("POINT", ("UNITS",)), ("ANALOG", ("UNITS", "USED"))):
        g = params.get(group, {})
        for name in (sorted(g) if names is None else names):
            entry = g.get(name)
            if name.startswith("__") or not isinstance(entry, dict):
                continue
            value = entry.get("value")
            parts.append((group, name, None if value is None else repr(np.asarray(value).tolist())))
    return hashlib.sha256(repr((parts, analog_shape[0], analog_shape[1] > 0)).encode()).hexdigest()


def _constants(pf, ch: np.ndarray, analogs: np.ndarray) -> dict | None:
    """What ezc3d ``ForcePlatform::extractData`` (types 2 and 4) applies to every frame: the plate's six
    analog channels, calibration (type 4), origin, mean corner and reference frame; None when the
    channels are not in the analog block."""
    n = pf.nbFrames()
    if ch.size < 6 or ch[:6].min() < 0 or ch[:6].max() >= analogs.shape[0] or analogs.shape[1] != n:
        return None
    return {"channels": ch[:6].copy(), "cal": pf.calMatrix().to_array() if pf.type() == 4 else None,
            "origin": pf.origin().to_array()[:, 0][:, None], "mean_corners": pf.meanCorners().to_array()[:, 0][:, None],
            "frame": _reference_frame(pf)}


def _vectorised(pf, analogs: np.ndarray, ch: np.ndarray) -> dict | None:
    """ezc3d ``ForcePlatform::extractData`` for types 2 and 4, on every frame at once."""
    k = _constants(pf, ch, analogs)
    return None if k is None else _apply(k, analogs)


def _apply(k: dict, analogs: np.ndarray) -> dict:
    """ezc3d ``ForcePlatform::extractData`` for types 2 and 4, on every frame at once."""
    n = analogs.shape[1]
    r = k["frame"]
    raw = analogs[k["channels"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        if k["cal"] is not None:
            raw = k["cal"] @ raw
        force_raw = raw[0:3]
        moment_raw = raw[3:6] + np.cross(force_raw, k["origin"], axis=0)
        cop_raw = np.vstack([-moment_raw[1] / force_raw[2], moment_raw[0] / force_raw[2], np.zeros(n)])
        return {"force": r @ force_raw, "moment": r @ moment_raw, "center_of_pressure": r @ cop_raw + k["mean_corners"],
                "Tz": r @ (moment_raw - np.cross(force_raw, -cop_raw, axis=0))}


def _reference_frame(pf) -> np.ndarray:
    """ezc3d ``computePfReferenceFrame``: x from corner 2 to 1, z = x cross (corner 4 to 1), y = z cross x."""
    c = [v.to_array()[:, 0] for v in pf.corners()]
    x, y = c[0] - c[1], c[0] - c[3]
    z = np.cross(x, y)
    y = np.cross(z, x)
    return np.column_stack([x / np.linalg.norm(x), y / np.linalg.norm(y), z / np.linalg.norm(z)])


def _configuration(pf, channels: np.ndarray, corners: np.ndarray) -> tuple:
    return (pf.type(), tuple(int(v) for v in channels), pf.calMatrix().to_array().tobytes(),
            pf.origin().to_array().tobytes(), np.asarray(corners, dtype=np.float64).tobytes(), pf.nbFrames() > 0)


def _matches_ezc3d(pf, plate: dict) -> bool:
    n = pf.nbFrames()
    if n == 0:
        return True
    frames = np.unique(np.linspace(0, n - 1, CHECK_FRAMES).astype(int))
    for key, getter in (("force", pf.forces), ("center_of_pressure", pf.CoP), ("Tz", pf.Tz)):
        vectors = getter()
        theirs = np.column_stack([vectors[i].to_array()[:, 0] for i in frames])
        mine = plate[key][:, frames]
        scale = max(float(np.nanmax(np.abs(plate[key]), initial=0.0)), 1.0)
        same_gaps = np.array_equal(np.isfinite(mine), np.isfinite(theirs))
        fin = np.isfinite(mine) & np.isfinite(theirs)
        if not same_gaps or np.any(np.abs(mine[fin] - theirs[fin]) > CHECK_RTOL * scale):
            return False
    return True


def _copied(pf) -> dict:
    """ezc3d's own values, copied frame by frame (what ``extract_forceplat_data=True`` does)."""
    def block(vectors) -> np.ndarray:
        return np.column_stack([v.to_array()[:, 0] for v in vectors]) if len(vectors) else np.zeros((3, 0))
    return {"force": block(pf.forces()), "moment": block(pf.moments()), "center_of_pressure": block(pf.CoP()),
            "Tz": block(pf.Tz())}
