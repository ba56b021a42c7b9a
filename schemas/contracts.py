"""Table contracts: the single declaration of every lake table.

Each :class:`Table` lists its columns (type, unit, nullability, allowed values,
range, description), primary key and grain. The DuckLake DDL, column comments and
the data dictionary are generated from these objects; there is no second copy.
No I/O here.
"""
from __future__ import annotations

from schemas import vocab
from schemas.contract_types import C, Column, Table  # noqa: F401  (re-exported: tests and readers use them)

_SITE = C("site_id", "VARCHAR", "Consortium site (inbox folder name).", nullable=False)
_TRIAL = C("trial_id", "VARCHAR", "Trial id: '<site>:<session>:<opaque id>' (12 hex digits; no inbox path: that stays "
          "in files.path, for the site's operators).", nullable=False)
_SIDE = C("side", "VARCHAR", "Body side: L, R, or U (a channel whose label and manifest name no side).",
          allowed=vocab.CHANNEL_SIDES)

FILES = Table(
    "files", "Every file that arrived in a site inbox, with what became of it.",
    "one row per (sha256, site, path)", ("sha256", "site_id", "path"),
    (
        C("sha256", "VARCHAR", "SHA-256 of the file bytes (content address in raw/). For an inbox entry refused "
          "unread (a link, a special file, a name that is not UTF-8, a file over the size limit): the SHA-256 of "
          "its description, and raw_path is null.", nullable=False),
        _SITE,
        C("path", "VARCHAR", "Path relative to the site inbox (bytes that are not UTF-8 shown as \\xNN).", nullable=False),
        C("size_bytes", "BIGINT", "File size.", "bytes", False, range=(0, None)),
        C("received_at", "TIMESTAMP WITH TIME ZONE", "When myomap first saw the file.", nullable=False),
        C("status", "VARCHAR", "ingested, duplicate, superseded, quarantined or held (no session claims it).",
          nullable=False, allowed=vocab.FILE_STATUSES),
        C("session_id", "VARCHAR", "Session claiming the file (manifest)."),
        C("trial_id", "VARCHAR", "Trial the file produced (site:session:<opaque id>; the path is only here, in `path`)."),
        C("raw_path", "VARCHAR", "Byte-for-byte copy in the raw zone."),
        C("run_id", "VARCHAR", "Nightly run that last changed the status."),
        C("inbox_stat", "VARCHAR", "The inbox entry's metadata when its bytes were hashed (local: type, size, "
          "modification and status-change times, inode; S3: size, ETag, last modified); a later night that finds "
          "the same at this path does not read the file again. Null: read each night (changed just before)."),
    ),
)

SITES = Table(
    "sites", "Consortium sites and their data-sharing rules (from manifest.yaml).", "one row per site", ("site_id",),
    (
        _SITE,
        C("mains_hz", "DOUBLE", "Mains frequency.", "Hz"),
        C("timezone", "VARCHAR", "IANA time zone."),
        C("embargo_until", "DATE", "Data of this site is not shared with other sites before this date."),
        C("consent", "VARCHAR", "Consent scopes, comma-separated (e.g. pooled_analysis, public_release)."),
    ),
)

SUBJECTS = Table(
    "subjects", "Pseudonymous subjects from site manifests (no direct identifiers).",
    "one row per subject", ("subject_id",),
    (
        C("subject_id", "VARCHAR", "Pseudonymous subject id.", nullable=False), _SITE,
        C("sex", "VARCHAR", "Sex as stated by the site.", allowed=("F", "M", "X", None)),
        C("mass_kg", "DOUBLE", "Body mass.", "kg", range=(10, 300)),
        C("height_m", "DOUBLE", "Body height.", "m", range=(0.5, 2.5)),
    ),
)

SESSIONS = Table(
    "sessions", "Recording sessions from site manifests.", "one row per session", ("session_id",),
    (
        C("session_id", "VARCHAR", "Session id (unique within the lake).", nullable=False), _SITE,
        C("subject_id", "VARCHAR", "Subject recorded.", nullable=False),
        C("session_date", "DATE", "Recording date."),
        C("condition", "VARCHAR", "Condition, e.g. fresh / fatigued."),
        C("task", "VARCHAR", "Task, e.g. walk / run / single_leg_landing."),
        C("terrain", "VARCHAR", "Terrain, e.g. treadmill / overground."),
        C("mains_hz", "DOUBLE", "Site mains frequency.", "Hz"),
    ),
)

TRIALS = Table(
    "trials", "One recording (file) of one session.", "one row per trial", ("trial_id",),
    (
        _TRIAL, _SITE,
        C("subject_id", "VARCHAR", "Subject.", nullable=False),
        C("session_id", "VARCHAR", "Session.", nullable=False),
        C("sha256", "VARCHAR", "File the trial was read from.", nullable=False),
        C("format", "VARCHAR", "File format (c3d, delsys_csv, ...).", nullable=False),
        C("vendor", "VARCHAR", "Acquisition system vendor."),
        C("software", "VARCHAR", "Acquisition software and version."),
        C("processor", "VARCHAR", "C3D processor type (intel, dec, sgi)."),
        C("duration_s", "DOUBLE", "Duration of the longest stream.", "s", False, range=(0, 36000)),
        C("point_rate_hz", "DOUBLE", "Marker sampling rate.", "Hz"),
        C("analog_rate_hz", "DOUBLE", "Analog (EMG/plate) sampling rate.", "Hz"),
        C("first_frame", "INTEGER", "C3D first frame (absolute time offset = first_frame / point rate)."),
        C("n_emg_channels", "INTEGER", "EMG channels mapped to a muscle."),
        C("n_force_plates", "INTEGER", "Force plates in the file."),
        C("n_markers", "INTEGER", "Marker trajectories in the file."),
        C("ingested_at", "TIMESTAMP WITH TIME ZONE", "When the trial was committed."),
        C("frame_rotation", "VARCHAR", "Rotation R (JSON 3x3, rows = lab X, Y, Z in file axes) that put markers, plate "
          "corners, CoP and GRF in the lab frame (Z up, X along the progression where inferable): lab = R @ file."),
        C("vertical_axis_file", "VARCHAR", "The file's own vertical axis (+X, -X, +Y, -Y, +Z, -Z).",
          allowed=("+X", "-X", "+Y", "-Y", "+Z", "-Z", None)),
        C("frame_source", "VARCHAR", "Evidence for the vertical axis: force_plates (corner plane), "
          "force_plates+markers, markers, manifest (vertical_axis override), reader (already converted) or assumed.",
          allowed=("force_plates", "force_plates+markers", "markers", "manifest", "reader", "assumed", None)),
    ),
)

EMG_CHANNELS = Table(
    "emg_channels", "EMG channels of a trial, mapped onto the muscle vocabulary.",
    "one row per trial x channel", ("trial_id", "channel"),
    (
        _TRIAL,
        C("channel", "SMALLINT", "Channel number within the trial (0-based, EMG only).", nullable=False),
        C("label", "VARCHAR", "Label as written by the vendor.", nullable=False),
        C("muscle", "VARCHAR", "Muscle id (schemas.vocab.MUSCLES).", nullable=False, allowed=vocab.MUSCLES),
        C("side", "VARCHAR", "Body side: L, R, or U = the label names none and neither does the manifest "
          "(session or site `side:`); U channels are never paired left against right.", nullable=False,
          allowed=vocab.CHANNEL_SIDES),
        C("unit", "VARCHAR", "Unit of the stored samples (always mV).", nullable=False, allowed=("mV",)),
        C("source_unit", "VARCHAR", "Unit in the file before conversion."),
        C("rate_hz", "DOUBLE", "Sampling rate.", "Hz", False, range=(100, 20000)),
        C("n_samples", "INTEGER", "Number of samples.", nullable=False),
        C("mapping", "VARCHAR", "How the label was mapped: alias, description or manifest."),
        C("gain", "DOUBLE", "Amplifier gain from the manifest (electrode -> file value); the samples were divided "
          "by it. Null = not stated.", range=(0, None)),
        C("amplitude_basis", "VARCHAR", "electrode_mv: emg_mv is the potential at the electrode (gain known, or "
          "the values are plausibly electrode-level); amplifier_output: emg_mv is the amplifier output (gain "
          "unknown). Compare raw amplitudes across sites only within electrode_mv; prefer normalised amplitudes.",
          allowed=("electrode_mv", "amplifier_output", "unknown", None)),
    ),
)

EMG_SAMPLES = Table(
    "emg_samples", "Raw EMG samples in mV (long layout, sorted by trial, channel, sample).",
    "one row per trial x channel x sample", ("trial_id", "channel", "sample_index"),
    (
        _TRIAL,
        C("channel", "SMALLINT", "Channel number (emg_channels.channel).", nullable=False),
        C("sample_index", "INTEGER", "Sample number from the trial's first sample; time_s = sample_index / rate_hz.",
          nullable=False, range=(0, None)),
        C("emg_mv", "FLOAT", "EMG potential.", "mV"),
    ),
    sort_by=("trial_id", "channel", "sample_index"),
)

EMG_ENVELOPES = Table(
    "emg_envelopes",
    "Linear envelope (band-pass, full-wave rectification, low-pass, zero-phase), stored at a reduced rate.",
    "one row per trial x channel x envelope sample", ("trial_id", "channel", "sample_index", "params_hash"),
    (
        _TRIAL,
        C("channel", "SMALLINT", "Channel number.", nullable=False),
        C("muscle", "VARCHAR", "Muscle id.", nullable=False),
        _SIDE,
        C("sample_index", "INTEGER", "Envelope sample number.", nullable=False),
        C("time_s", "DOUBLE", "Time from the trial's first sample.", "s", False),
        C("envelope_mv", "FLOAT", "Envelope amplitude.", "mV"),
        C("rate_hz", "DOUBLE", "Envelope sampling rate.", "Hz", False),
        C("params_hash", "VARCHAR", "Hash of the pipeline version and parameters used.", nullable=False),
    ),
    sort_by=("trial_id", "channel", "sample_index"),
)

FORCE_PLATES = Table(
    "force_plates", "Force plates of a trial.", "one row per trial x plate", ("trial_id", "plate"),
    (
        _TRIAL,
        C("plate", "SMALLINT", "Plate number (1-based, as in the file).", nullable=False),
        C("plate_type", "SMALLINT", "C3D FORCE_PLATFORM:TYPE (1-4)."),
        C("rate_hz", "DOUBLE", "Sampling rate.", "Hz"),
        C("peak_force_z_n", "DOUBLE", "Peak vertical ground-reaction force (offset removed).", "N"),
        C("offset_force_z_n", "DOUBLE", "Unloaded-plate vertical offset removed from the signal.", "N"),
    ),
)

GRF = Table(
    "grf", "Ground-reaction force, centre of pressure and free moment in the lab frame.",
    "one row per trial x plate x sample", ("trial_id", "plate", "sample_index"),
    (
        _TRIAL,
        C("plate", "SMALLINT", "Plate number.", nullable=False),
        C("sample_index", "INTEGER", "Sample number from the trial's first analog sample.", nullable=False),
        C("time_s", "DOUBLE", "Time from the trial's first sample.", "s", False),
        C("force_x_n", "FLOAT", "Force along lab X.", "N"),
        C("force_y_n", "FLOAT", "Force along lab Y.", "N"),
        C("force_z_n", "FLOAT", "Vertical force (lab Z).", "N"),
        C("cop_x_mm", "FLOAT", "Centre of pressure, lab X.", "mm"),
        C("cop_y_mm", "FLOAT", "Centre of pressure, lab Y.", "mm"),
        C("free_moment_nmm", "FLOAT", "Free moment about the vertical.", "N mm"),
    ),
    sort_by=("trial_id", "plate", "sample_index"),
)

MARKERS = Table(
    "markers", "Marker trajectories in the lab frame; gaps are nulls.", "one row per trial x marker x frame",
    ("trial_id", "marker", "frame"),
    (
        _TRIAL,
        C("marker", "VARCHAR", "Marker label as in the file (duplicates suffixed #2, blanks named point_N).",
          nullable=False),
        C("frame", "INTEGER", "Frame number from the trial's first frame.", nullable=False),
        C("time_s", "DOUBLE", "Time from the trial's first sample.", "s", False),
        C("x_mm", "FLOAT", "Lab X.", "mm"), C("y_mm", "FLOAT", "Lab Y.", "mm"), C("z_mm", "FLOAT", "Lab Z.", "mm"),
    ),
    sort_by=("trial_id", "marker", "frame"),
)

ULTRASOUND_SERIES = Table(
    "ultrasound_series", "Fascicle tracking (e.g. UltraTrack) on the trial's EMG clock.",
    "one row per trial x region x frame", ("trial_id", "region", "frame"),
    (
        _TRIAL, C("region", "VARCHAR", "Tracked region / probe position.", nullable=False),
        C("muscle", "VARCHAR", "Imaged muscle (manifest or file)."), _SIDE,
        C("frame", "INTEGER", "Ultrasound frame number.", nullable=False),
        C("time_s", "DOUBLE", "Frame time on the EMG clock.", "s"),
        C("fascicle_length_mm", "DOUBLE", "Fascicle length.", "mm", range=(0, 500)),
        C("pennation_deg", "DOUBLE", "Pennation angle.", "deg", range=(0, 90)),
        C("thickness_mm", "DOUBLE", "Muscle thickness.", "mm"),
    ),
)

ULTRASOUND_MEASUREMENTS = Table(
    "ultrasound_measurements", "Scalar ultrasound measurements (thickness, shear-wave speed or modulus).",
    "one row per trial x muscle x side x metric", ("trial_id", "muscle", "side", "metric"),
    (
        _TRIAL, C("muscle", "VARCHAR", "Muscle id."), _SIDE,
        C("metric", "VARCHAR", "muscle_thickness_mm, shear_wave_speed_m_per_s, shear_modulus_kpa, ...", nullable=False),
        C("value", "DOUBLE", "Value in the unit named by the metric."), C("unit", "VARCHAR", "Unit."),
        C("condition", "VARCHAR", "Condition stated in the file."),
    ),
)

ULTRASOUND_METRICS = Table(
    "ultrasound_metrics", "Fascicle length / pennation / thickness summaries per interval, and shear modulus.",
    "one row per trial x region x interval x variable", ("trial_id", "region", "interval", "variable"),
    (
        _TRIAL, C("region", "VARCHAR", "Region (or muscle for scalar measurements).", nullable=False),
        C("muscle", "VARCHAR", "Muscle id."), _SIDE,
        C("interval", "INTEGER", "Interval number (0 = the whole recording).", nullable=False),
        C("variable", "VARCHAR", "fascicle_length_mm, pennation_angle_deg, muscle_thickness_mm, shear_modulus_kpa.",
          nullable=False),
        C("start_s", "DOUBLE", "Interval start.", "s"), C("end_s", "DOUBLE", "Interval end.", "s"),
        C("min", "DOUBLE", "Minimum (variable's unit)."), C("max", "DOUBLE", "Maximum."),
        C("mean", "DOUBLE", "Mean."), C("excursion", "DOUBLE", "max - min."),
    ),
)

EMG_SPECTRA = Table(
    "emg_spectra", "Spectral indicators of EMG bursts per trial channel (fatigue).",
    "one row per trial x channel", ("trial_id", "channel"),
    (
        _TRIAL, C("channel", "SMALLINT", "Channel.", nullable=False),
        C("muscle", "VARCHAR", "Muscle id."), _SIDE,
        C("mdf_hz", "DOUBLE", "Median frequency over bursts (mean of per-burst values).", "Hz"),
        C("mnf_hz", "DOUBLE", "Mean frequency over bursts.", "Hz"),
        C("mdf_slope_hz_per_s", "DOUBLE", "Least-squares slope of burst MDF over the trial.", "Hz/s"),
        C("n_bursts", "INTEGER", "Bursts analysed."),
        C("params_hash", "VARCHAR", "Pipeline parameters hash."),
    ),
)

CHANNEL_QC = Table(
    "channel_qc", "Signal quality verdict per EMG channel (flags, never deletes; thresholds in transforms/qc.py).",
    "one row per trial x channel", ("trial_id", "channel"),
    (
        _TRIAL, C("channel", "SMALLINT", "Channel (emg_channels.channel).", nullable=False),
        C("label", "VARCHAR", "Vendor label."), C("muscle", "VARCHAR", "Muscle id."), _SIDE,
        C("verdict", "VARCHAR", "ok, warn or bad; analyses skip bad channels.", nullable=False,
          allowed=("ok", "warn", "bad")),
        C("flags", "VARCHAR", "Comma-separated flag codes (docs/qc_thresholds.md)."),
        C("clipping_frac", "DOUBLE", "Fraction of samples at the ADC rails."),
        C("mains_ratio", "DOUBLE", "Power at mains and harmonics / power 20-450 Hz."),
        C("median_freq_hz", "DOUBLE", "Spectral median frequency in the EMG band.", "Hz"),
        C("spectral_flatness", "DOUBLE", "Spectral flatness (1 = white noise)."),
        C("rms_mv", "DOUBLE", "RMS about the mean of emg_samples.emg_mv (at the electrode when amplitude_basis = "
          "electrode_mv).", "mV"),
        C("dc_offset_mv", "DOUBLE", "Baseline offset.", "mV"),
        C("nan_frac", "DOUBLE", "Fraction of missing samples."),
        C("amplitude_basis", "VARCHAR", "electrode_mv or amplifier_output (as emg_channels.amplitude_basis): "
          "which amplitude ceiling applied.", allowed=("electrode_mv", "amplifier_output", "unknown", None)),
        C("qc_version", "VARCHAR", "QC code version."),
    ),
)

PLAUSIBILITY = Table(
    "plausibility", "Cross-stream plausibility findings per trial (rates, force peaks, event order, durations).",
    "one row per trial x finding", ("trial_id", "code"),
    (
        _TRIAL, C("code", "VARCHAR", "Stable finding code.", nullable=False),
        C("severity", "VARCHAR", "info, warn or bad.", allowed=("info", "warn", "bad")),
        C("message", "VARCHAR", "What was found and what to check."), C("details", "VARCHAR", "JSON details."),
    ),
)

ANALYSIS_EXCLUSIONS = Table(
    "analysis_exclusions", "Channels the analysis skipped, and why (QC verdict bad, too short, no events).",
    "one row per trial x channel", ("trial_id", "channel"),
    (_TRIAL, C("channel", "SMALLINT", "Channel.", nullable=False), C("muscle", "VARCHAR", "Muscle id."), _SIDE,
     C("reason", "VARCHAR", "Why the channel was not analysed.", nullable=False)),
)

GAIT_EVENTS = Table(
    "gait_events", "Gait events, annotated in the file or detected.", "one row per event",
    ("trial_id", "side", "event", "time_s", "source"),
    (
        _TRIAL,
        C("side", "VARCHAR", "Body side; U = unknown (no evidence assigned it, see reason).", nullable=False,
          allowed=vocab.EVENT_SIDES),
        C("event", "VARCHAR", "foot_strike or foot_off.", nullable=False, allowed=vocab.EVENTS),
        C("time_s", "DOUBLE", "Time relative to the trial's first sample.", "s", False),
        C("source", "VARCHAR", "annotated, force_plate or kinematic.", nullable=False, allowed=vocab.EVENT_SOURCES),
        C("plate", "SMALLINT", "Force plate of a force_plate event."),
        C("reason", "VARCHAR", "How the side was decided (force_plate: annotation, markers, geometry) or why it is "
          "unknown."),
    ),
)

QUARANTINE = Table(
    "quarantine", "Files (or channels) refused, with a stable reason code and what to do.",
    "one row per refused file x stage", ("sha256", "site_id", "path", "stage"),
    (
        C("sha256", "VARCHAR", "File content hash.", nullable=False), _SITE,
        C("path", "VARCHAR", "Path relative to the site inbox.", nullable=False),
        C("stage", "VARCHAR", "Stage that refused it: inbox (never read: symlink, special_file, "
          "directory_named_like_data, name_not_utf8, file_too_large), manifest, read, harmonise, validate, write.",
          nullable=False),
        C("reason_code", "VARCHAR", "Stable machine-readable reason.", nullable=False),
        C("message", "VARCHAR", "What is wrong and what to do.", nullable=False),
        C("quarantined_at", "TIMESTAMP WITH TIME ZONE", "When."),
        C("raw_path", "VARCHAR", "Kept original in the raw zone."),
        C("run_id", "VARCHAR", "Run that quarantined it."),
        C("resolved_at", "TIMESTAMP WITH TIME ZONE", "When a retry (fixed manifest, new reader) ingested the file."),
    ),
)

DERIVATIONS = Table(
    "derivations", "Which derived step ran on which trial with which parameters (drives incremental runs).",
    "one row per trial x step", ("trial_id", "step"),
    (C("trial_id", "VARCHAR", "Trial, or '*' for cohort-wide steps.", nullable=False),
     C("step", "VARCHAR", "envelopes, analysis or cohort.", nullable=False),
     C("params_hash", "VARCHAR", "Pipeline version + parameters hash.", nullable=False),
     C("completed_at", "TIMESTAMP WITH TIME ZONE", "When the step committed.")),
)

VALIDATIONS = Table(
    "validations",
    "Contract checks of every batch the ingest wrote (GX suite derived from these contracts, plus full-batch "
    "pyarrow checks on large batches; warehouse/ingest/validation.py): one row per expectation.",
    "one row per run x trial x table x expectation x column",
    ("run_id", "trial_id", "table_name", "expectation", "column_name"),
    (
        C("run_id", "VARCHAR", "Run that validated the batch.", nullable=False),
        C("trial_id", "VARCHAR", "Trial of the batch (null for batches not tied to one trial, e.g. sites)."),
        C("table_name", "VARCHAR", "Contract table the batch was written to.", nullable=False),
        C("expectation", "VARCHAR", "Expectation type, e.g. expect_column_values_to_not_be_null, "
          "or expect_column_type_to_be_compatible (myomap's Arrow type check).", nullable=False),
        C("column_name", "VARCHAR", "Column checked; comma-separated for a compound key; null for table-level checks."),
        C("success", "BOOLEAN", "The expectation held.", nullable=False),
        C("unexpected_count", "BIGINT", "Rows that broke it, over the whole batch "
          "(null for column-set and type checks).", range=(0, None)),
        C("detail", "VARCHAR", "Outcome with up to 3 examples and row numbers, and the engine(s) that checked it."),
    ),
)

RUNS = Table(
    "runs", "Nightly runs.", "one row per run", ("run_id",),
    (
        C("run_id", "VARCHAR", "Run id.", nullable=False),
        C("started_at", "TIMESTAMP WITH TIME ZONE", "Start."),
        C("finished_at", "TIMESTAMP WITH TIME ZONE", "End."),
        C("sites", "VARCHAR", "Sites scanned."),
        C("files_seen", "INTEGER", "Files found in the inboxes."),
        C("files_new", "INTEGER", "Files not seen before."),
        C("trials_ingested", "INTEGER", "Trials committed."),
        C("quarantined", "INTEGER", "Files quarantined."),
        C("held", "INTEGER", "Files held (no session claims them)."),
        C("status", "VARCHAR", "completed (every site had its turn), stopped (storage full or unavailable: the "
          "night stopped early, the next run continues) or failed (an unexpected error; see message).",
          allowed=("completed", "stopped", "failed")),
        C("message", "VARCHAR", "Why the run stopped or failed (null when completed)."),
        C("site_outcomes", "VARCHAR", "JSON object, one entry per site: {outcome: ok | manifest_error | "
          "failed | stopped | not_reached, reason_code, message (what and where, e.g. the manifest's path), "
          "files_seen, files_new, ingested, quarantined, held, errors}."),
    ),
)

_SUBJ = C("subject_id", "VARCHAR", "Pseudonymous subject id.", nullable=False)
_SESS = C("session_id", "VARCHAR", "Session id.", nullable=False)
_COND = C("condition", "VARCHAR", "Session condition (fresh, fatigued, ...).")
_MUSCLE = C("muscle", "VARCHAR", "Muscle id (schemas.vocab.MUSCLES).", allowed=vocab.MUSCLES)
_CYCLE = C("cycle", "INTEGER", "Gait cycle number within the trial and side (0-based).", nullable=False)
_PHASH = C("params_hash", "VARCHAR", "Pipeline version + parameters hash (results of different settings never mix).")

GAIT_CYCLES = Table(
    "gait_cycles", "Gait cycles (ipsilateral foot strike to foot strike) and why any is excluded.",
    "one row per trial x side x cycle", ("trial_id", "side", "cycle"),
    (_TRIAL, _SIDE, _CYCLE,
     C("start_s", "DOUBLE", "Foot strike starting the cycle.", "s"),
     C("end_s", "DOUBLE", "Next ipsilateral foot strike.", "s"),
     C("foot_off_s", "DOUBLE", "Foot off within the cycle.", "s"),
     C("duration_s", "DOUBLE", "Cycle duration.", "s", range=(0, 10)),
     C("stance_pct", "DOUBLE", "Stance duration in % of the cycle.", "%", range=(0, 100)),
     C("valid", "BOOLEAN", "Usable for analysis."),
     C("reason", "VARCHAR", "Why the cycle is excluded (null when valid)."),
     C("event_source", "VARCHAR", "Source of the foot strikes that bound the cycle (annotated > force_plate > "
       "kinematic).", allowed=vocab.EVENT_SOURCES),
     C("foot_off_source", "VARCHAR", "Source of the foot off (annotated > force_plate > kinematic; a treadmill "
       "plate foot off that disagrees with the kinematic one is replaced by it).", allowed=vocab.EVENT_SOURCES),
     C("peak_force_z_n", "DOUBLE", "Peak vertical GRF of the stance (plate-detected cycles).", "N"),
     C("impulse_z_ns", "DOUBLE", "Vertical impulse of the stance.", "N s")),
)

ACTIVATION_ONSETS = Table(
    "activation_onsets", "Muscle activation onsets/offsets per cycle, by several detection methods.",
    "one row per trial x muscle x side x cycle x method x burst", ("trial_id", "muscle", "side", "cycle", "method", "burst"),
    (_TRIAL, _SUBJ, _SESS, _MUSCLE, _SIDE, _CYCLE,
     C("method", "VARCHAR", "Onset detector: hodges_bui, tkeo, double_threshold.", nullable=False),
     C("burst", "SMALLINT", "Burst number within the cycle (0 = first, counting a censored burst).", nullable=False),
     C("censored", "BOOLEAN", "The burst was already active at the first sample (onset unknown, onset_ms null) or "
       "still active at the last (offset null)."),
     C("onset_ms", "DOUBLE", "Onset relative to the ipsilateral foot strike starting the cycle (negative = before).", "ms"),
     C("offset_ms", "DOUBLE", "Offset relative to the same foot strike.", "ms"),
     C("onset_pct", "DOUBLE", "Onset in % of the cycle.", "%"),
     C("offset_pct", "DOUBLE", "Offset in % of the cycle.", "%"),
     C("is_default", "BOOLEAN", "Row of the default method."),
     C("bias_corrected", "BOOLEAN", "The documented method bias was subtracted."),
     _PHASH),
)

EMG_CYCLE_METRICS = Table(
    "emg_cycle_metrics", "Per-cycle envelope metrics.", "one row per trial x muscle x side x cycle",
    ("trial_id", "muscle", "side", "cycle"),
    (_TRIAL, _SUBJ, _SESS, _MUSCLE, _SIDE, _CYCLE,
     C("peak", "DOUBLE", "Envelope peak (mV).", "mV"),
     C("iemg", "DOUBLE", "Integrated envelope over the cycle (mV s).", "mV s"),
     C("time_of_peak_pct", "DOUBLE", "Time of peak in % of the cycle.", "%", range=(0, 100)),
     C("mean_stance_mv", "DOUBLE", "Mean envelope in stance.", "mV"),
     C("mean_swing_mv", "DOUBLE", "Mean envelope in swing.", "mV"),
     C("mean_loading_response_mv", "DOUBLE", "Mean envelope in loading response (0-10 %).", "mV"),
     _PHASH),
)

CO_CONTRACTION = Table(
    "co_contraction", "Falconer & Winter co-contraction index of antagonist pairs per cycle.",
    "one row per trial x side x cycle x pair", ("trial_id", "side", "cycle", "muscle_a", "muscle_b"),
    (_TRIAL, _SUBJ, _SESS, _SIDE, _CYCLE,
     C("muscle_a", "VARCHAR", "Agonist."), C("muscle_b", "VARCHAR", "Antagonist."),
     C("cci", "DOUBLE", "2 sum(min(a,b)) / sum(a+b) (0 = none, 1 = identical) of amplitude-normalised "
       "envelopes.", range=(0, 1)),
     C("normalisation", "VARCHAR", "Amplitude normalisation before the index (mean_cycle_peak: each muscle / "
       "peak of its mean cycle in the trial).")),
)

ASYMMETRY = Table(
    "asymmetry", "Left/right asymmetry of per-side metrics: signed difference for all, Robinson SI and "
    "Zifchock SA for positive ratio-scale magnitudes (schemas.metrics).",
    "one row per subject x session x muscle x metric", ("subject_id", "session_id", "muscle", "metric"),
    (_SUBJ, _SESS, _COND, _MUSCLE,
     C("metric", "VARCHAR", "Metric compared (peak, iemg, onset_ms, stance_time_s, grf_peak_n...).", nullable=False),
     C("left", "DOUBLE", "Left value (in unit)."), C("right", "DOUBLE", "Right value (in unit)."),
     C("diff", "DOUBLE", "Signed right - left in the metric's unit; wrapped into (-50, 50] for % of the cycle."),
     C("unit", "VARCHAR", "Unit of left, right and diff (from schemas.metrics)."),
     C("si_pct", "DOUBLE", "Robinson symmetry index (R-L)/(0.5(R+L)) x 100; only for positive ratio-scale "
       "magnitudes (null for timing metrics: see diff).", "%"),
     C("sa_pct", "DOUBLE", "Zifchock symmetry angle; same domain as si_pct.", "%"),
     C("n_cycles", "INTEGER", "Cycles behind the value (smaller side)."),
     C("reason", "VARCHAR", "Why a value is null.")),
)

VARIABILITY = Table(
    "variability", "Cycle-to-cycle variability per subject, session, muscle and side.",
    "one row per subject x session x muscle x side x metric", ("subject_id", "session_id", "muscle", "side", "metric"),
    (_SUBJ, _SESS, _COND, _MUSCLE, _SIDE,
     C("metric", "VARCHAR", "envelope (EMG, muscle set) or stance_time_s / grf_peak_n (muscle null)."),
     C("cv_pct", "DOUBLE", "Winter's CV of the time-normalised envelope; for ratio-scale scalar metrics "
       "SD/mean x 100 (null for timing metrics).", "%"),
     C("variance_ratio", "DOUBLE", "Variance ratio (Hershler & Milner; 0 = identical cycles, ~1 = noise)."),
     C("onset_sd_ms", "DOUBLE", "SD of the default-method onset across cycles.", "ms"),
     C("sd", "DOUBLE", "SD across cycles of a scalar metric, in unit (timing metrics get this, never a CV)."),
     C("unit", "VARCHAR", "Unit of the metric (schemas.metrics)."),
     C("n_cycles", "INTEGER", "Cycles used.")),
)

FATIGUE = Table(
    "fatigue", "Spectral fatigue indicators per subject, session, muscle and side.",
    "one row per subject x session x muscle x side", ("subject_id", "session_id", "muscle", "side"),
    (_SUBJ, _SESS, _COND, _MUSCLE, _SIDE,
     C("mdf_hz", "DOUBLE", "Median frequency of the bursts.", "Hz"),
     C("mnf_hz", "DOUBLE", "Mean frequency of the bursts.", "Hz"),
     C("mdf_slope_hz_per_s", "DOUBLE", "Slope of the burst MDF over the trial.", "Hz/s"),
     C("onset_ms", "DOUBLE", "Mean default-method onset.", "ms"),
     C("n_bursts", "INTEGER", "Bursts analysed.")),
)

FATIGUE_CONTRASTS = Table(
    "fatigue_contrasts", "Fresh vs fatigued per subject, muscle and side: spectral shift beside onset shift.",
    "one row per subject x muscle x side", ("subject_id", "muscle", "side"),
    (_SUBJ, _MUSCLE, _SIDE,
     C("mdf_fresh_hz", "DOUBLE", "Median frequency, fresh.", "Hz"),
     C("mdf_fatigued_hz", "DOUBLE", "Median frequency, fatigued.", "Hz"),
     C("mdf_shift_pct", "DOUBLE", "(fatigued - fresh) / fresh x 100.", "%"),
     C("onset_fresh_ms", "DOUBLE", "Mean onset, fresh.", "ms"),
     C("onset_fatigued_ms", "DOUBLE", "Mean onset, fatigued.", "ms"),
     C("onset_shift_ms", "DOUBLE", "fatigued - fresh (positive = later when fatigued).", "ms")),
)

SYNERGIES = Table(
    "synergies", "Muscle synergy weights per session and leg (NMF; smallest k with VAF >= 90 % and every "
    "muscle's local VAF >= 75 %; uncentred VAF).",
    "one row per session x side x synergy x muscle", ("session_id", "synergy", "muscle", "side"),
    (_SESS, C("n_synergies", "INTEGER", "Synergies needed to reach both VAF criteria (of this leg)."),
     C("vaf", "DOUBLE", "Uncentred VAF 1 - SSE/sum(D^2) of the chosen factorisation."),
     C("synergy", "INTEGER", "Synergy number (within the leg).", nullable=False), _MUSCLE, _SIDE,
     C("weight", "DOUBLE", "Weight (unit max per synergy)."),
     C("local_vaf", "DOUBLE", "Uncentred VAF of this muscle's envelope (per-muscle criterion)."),
     C("reached_criteria", "BOOLEAN", "Both VAF criteria reached (false: k = number of muscles without)."),
     C("n_cycles", "INTEGER", "Cycles of the leg behind the factorisation."),
     C("input_sha256", "VARCHAR", "Content hash of the leg's input (session, side, muscles and their time-normalised "
       "cycles) and of the method's parameters: a rebuild whose input hashes the same reuses these rows.")),
)

SYNERGY_ACTIVATIONS = Table(
    "synergy_activations", "Synergy activation profiles over the normalised gait cycle, per leg.",
    "one row per session x side x synergy x point", ("session_id", "side", "synergy", "sample"),
    (_SESS, _SIDE, C("synergy", "INTEGER", "Synergy number.", nullable=False),
     C("sample", "INTEGER", "Sample in the concatenated normalised cycles.", nullable=False),
     C("pct", "DOUBLE", "% of the gait cycle.", "%"), C("activation", "DOUBLE", "Activation coefficient.")),
)

ACTIVATION_MAP = Table(
    "activation_map", "Mean normalised envelope per muscle x % gait cycle, per subject/session/condition/cohort.",
    "one row per scope x scope id x muscle x side x pct", ("scope", "scope_id", "muscle", "side", "pct"),
    (C("scope", "VARCHAR", "subject, session, condition or cohort.", nullable=False),
     C("scope_id", "VARCHAR", "Id within the scope.", nullable=False), _MUSCLE, _SIDE,
     C("pct", "DOUBLE", "% of the gait cycle (0-100).", "%", False),
     C("envelope_mean", "DOUBLE", "Mean envelope normalised to the subject's peak (0-1)."),
     C("envelope_sd", "DOUBLE", "SD of the normalised envelope."),
     C("n_cycles", "INTEGER", "Cycles behind the value."),
     C("onset_mean_pct", "DOUBLE", "Mean onset (default method).", "%"),
     C("offset_mean_pct", "DOUBLE", "Mean offset (default method).", "%")),
)

SUBJECT_PROFILES = Table(
    "subject_profiles", "Patient-specific activation profile against the cohort reference (same task, condition).",
    "one row per subject x session x muscle x side x metric", ("subject_id", "session_id", "muscle", "side", "metric"),
    (_SUBJ, _SESS, C("task", "VARCHAR", "Task."), _COND, _MUSCLE, _SIDE,
     C("metric", "VARCHAR", "onset_ms, offset_ms, duration_ms, time_of_peak_pct, peak, si_pct.", nullable=False),
     C("value", "DOUBLE", "Subject's value."), C("reference_mean", "DOUBLE", "Cohort mean (leave-one-subject-out)."),
     C("reference_sd", "DOUBLE", "Cohort SD."), C("z", "DOUBLE", "z-score."),
     C("percentile", "DOUBLE", "Empirical percentile in the reference.", "%"),
     C("flag", "VARCHAR", "none, delayed_onset, early_offset, prolonged_activation, asymmetric_output."),
     C("n_reference", "INTEGER", "Subjects in the reference.")),
)

_COHORT_COLS = (
    _SITE, _COND, _MUSCLE, C("metric", "VARCHAR", "Metric summarised.", nullable=False),
    C("n_subjects", "INTEGER", "Subjects in the cell."), C("mean", "DOUBLE", "Mean of subject means."),
    C("sd", "DOUBLE", "SD."), C("p5", "DOUBLE", "5th percentile."), C("p25", "DOUBLE", "25th percentile."),
    C("p50", "DOUBLE", "Median."), C("p75", "DOUBLE", "75th percentile."), C("p95", "DOUBLE", "95th percentile."),
    C("suppressed", "BOOLEAN", "Cell has fewer subjects than the small-cell threshold: values withheld."),
    C("n_cycles", "BIGINT", "Gait cycles behind the cell (sum over its subjects' sessions and sides; null "
      "where suppressed)."),
    C("n_channels_excluded", "BIGINT", "EMG channels of this site x condition x muscle kept out of the "
      "analysis (QC verdict bad, plausibility, no events): see analysis_exclusions."),
)
COHORT_ASYMMETRY = Table("cohort_asymmetry", "Cohort summary of asymmetry metrics per site x condition x muscle.",
                         "one row per site x condition x muscle x metric", ("site_id", "condition", "muscle", "metric"),
                         _COHORT_COLS)
COHORT_VARIABILITY = Table("cohort_variability", "Cohort summary of variability metrics per site x condition x muscle.",
                           "one row per site x condition x muscle x metric",
                           ("site_id", "condition", "muscle", "metric"), _COHORT_COLS)


TABLES: dict[str, Table] = {t.name: t for t in (
    FILES, SITES, SUBJECTS, SESSIONS, TRIALS, EMG_CHANNELS, EMG_SAMPLES, EMG_ENVELOPES,
    FORCE_PLATES, GRF, MARKERS, ULTRASOUND_SERIES, ULTRASOUND_MEASUREMENTS, ULTRASOUND_METRICS, EMG_SPECTRA, CHANNEL_QC, PLAUSIBILITY, ANALYSIS_EXCLUSIONS, GAIT_EVENTS, QUARANTINE, DERIVATIONS, VALIDATIONS, RUNS, GAIT_CYCLES, ACTIVATION_ONSETS, EMG_CYCLE_METRICS,
    CO_CONTRACTION, ASYMMETRY, VARIABILITY, FATIGUE, FATIGUE_CONTRASTS, SYNERGIES, SYNERGY_ACTIVATIONS, ACTIVATION_MAP,
    SUBJECT_PROFILES, COHORT_ASYMMETRY, COHORT_VARIABILITY)}


def data_dictionary_markdown() -> str:
    """Render the data dictionary (Markdown) from the contracts."""
    out = ["# myomap data dictionary", "", "Generated from `schemas/contracts.py`; do not edit by hand.", ""]
    for t in TABLES.values():
        out += [f"## `{t.name}`", "", t.description, "",
                f"Grain: {t.grain}. Key: {', '.join(t.primary_key)}.", "",
                "| column | type | unit | null | allowed / range | description |",
                "|---|---|---|---|---|---|"]
        for c in t.columns:
            allowed = ", ".join(str(a) for a in c.allowed if a is not None) if c.allowed else ""
            if c.range:
                allowed = f"[{c.range[0]}, {c.range[1]}]"
            out.append(f"| {c.name} | {c.dtype} | {c.unit or ''} | {'yes' if c.nullable else 'no'} | "
                       f"{allowed} | {c.description} |")
        out.append("")
    return "\n".join(out)
