"""Analysis wiring: the lake side of the analysis core.

Owns the per-trial derivations (``derived``: envelopes and the ``derivations``
bookkeeping; ``trial``: gait events, cycles, onsets, metrics, co-contraction, spectra)
and the cohort tables rebuilt from them (``cohort``: asymmetry, variability, fatigue,
synergies, activation maps, profiles). Every computation is a pure function of
``transforms/``; these modules read their inputs from the lake and write the results
in one transaction per trial (or per rebuild).

May import: ``schemas``, ``transforms``, ``warehouse.settings``, ``warehouse.catalog``.
Never imports ``warehouse.ingest``, ``warehouse.serving`` or ``warehouse.demo``.
"""
