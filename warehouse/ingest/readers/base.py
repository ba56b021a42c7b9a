"""Common in-memory form of one recording, whatever the vendor format."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schemas.vocab import EMG_UNIT_TO_MV, emg_unit_factor  # noqa: F401 (re-exported)


class ReaderError(Exception):
    """A file cannot be read. ``reason_code`` is stable; ``message`` says what to do."""

    def __init__(self, reason_code: str, message: str):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@dataclass
class AnalogChannel:
    label: str
    unit: str
    rate_hz: float
    data: np.ndarray  # float64, in ``unit``
    description: str = ""
    adc_range: tuple[float, float] | None = None  # ADC rails in ``unit`` when the format declares them


@dataclass
class ForcePlate:
    plate: int  # 1-based
    plate_type: int | None
    rate_hz: float
    force_n: np.ndarray  # 3 x n, lab frame
    cop_mm: np.ndarray  # 3 x n
    free_moment_nmm: np.ndarray  # n
    corners_mm: np.ndarray | None = None  # 3 x 4 plate corners in the lab frame
    torque_nmm: np.ndarray | None = None  # 3 x n free-moment vector (about the plate normal), lab frame


@dataclass
class Event:
    side: str  # L / R / U (unknown)
    event: str  # foot_strike / foot_off
    time_s: float  # relative to the trial's first sample
    source: str = "annotated"


@dataclass
class UltrasoundSeries:
    """Fascicle tracking over time (e.g. UltraTrack), already on the recording's clock."""

    muscle: str | None
    side: str | None
    region: str  # tracked region / probe position label
    time_s: np.ndarray  # relative to the recording's first (EMG) sample
    fascicle_length_mm: np.ndarray
    pennation_deg: np.ndarray  # degrees (convert from radians in the reader)
    thickness_mm: np.ndarray | None = None


@dataclass
class Measurement:
    """A scalar measurement (ultrasound thickness, shear-wave speed or modulus, ...)."""

    muscle: str | None
    side: str | None
    metric: str  # e.g. muscle_thickness_mm, shear_wave_speed_m_per_s, shear_modulus_kpa
    value: float
    unit: str
    condition: str | None = None


@dataclass
class Recording:
    format: str
    vendor: str | None = None
    software: str | None = None
    processor: str | None = None
    point_rate_hz: float | None = None
    analog_rate_hz: float | None = None
    first_frame: int | None = None
    analogs: list[AnalogChannel] = field(default_factory=list)
    plates: list[ForcePlate] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    marker_labels: list[str] = field(default_factory=list)
    markers_mm: np.ndarray | None = None  # frames x markers x 3, NaN where gaps
    notes: list[str] = field(default_factory=list)
    plate_channel_indices: set[int] = field(default_factory=set)  # analog indices used by plates
    ultrasound: list[UltrasoundSeries] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    subject_id: str | None = None  # when the file itself names the subject (BIDS)
    findings: list[tuple[str, str, str]] = field(default_factory=list)  # (code, severity, message) -> plausibility
    #: Vertical axis of the file's own frame when the reader knows it (e.g. OpenSim .mot rotated to Z-up
    #: by the reader: "+Z"); None = detect it (``warehouse.ingest.lab_frame``).
    frame_known: str | None = None
    #: How the recording was put in the lab frame (set by ``lab_frame.align_to_lab``): rotation, evidence.
    frame: dict | None = None

    @property
    def duration_s(self) -> float:
        d = 0.0
        for a in self.analogs:
            d = max(d, len(a.data) / a.rate_hz)
        if self.markers_mm is not None and self.point_rate_hz:
            d = max(d, self.markers_mm.shape[0] / self.point_rate_hz)
        for p in self.plates:
            d = max(d, p.force_n.shape[1] / p.rate_hz)
        return d
