"""Serving: what members and the public read.

Owns the read-only SQL session and its views (``views``), the cohort filter grammar
(``cohort_filter``), cohort extracts (``extracts``), immutable releases
(``releases``), the HTML report (``report``) and its figures (``figures``).

May import: ``schemas``, ``transforms``, ``warehouse.settings``, ``warehouse.catalog``,
``warehouse.zones`` and the analysis parameters of ``warehouse.analysis`` (recorded in
release manifests). Never imports ``warehouse.ingest`` or ``warehouse.demo``: serving
reads the lake's tables, never the files they came from.
"""
