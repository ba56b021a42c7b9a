"""Serving: what members and the public read.

Owns who reads what (``access``: the member-scoped read session every command opens),
the statement gate of user SQL (``gate``: an allow-list on DuckDB's parse tree), the
hardening and the documented views (``views``), the cohort filter grammar
(``cohort_filter``), cohort extracts (``extracts``) and their BIDS form (``bids_export``, written
by ``bids_write`` and ``edf_write``: writing EDF/BDF and BIDS is an export concern, so the writers
live here while the readers stay in ingest), the Python API's reads (``reading``, ``signals``:
``import myomap`` wires them), immutable releases (``releases``) and their disclosure control
(``disclosure``), the HTML report (``report``, its sections ``report_sections`` and ``report_subjects``) and its
figures (``figures``). The threat model is
in ``docs/serving.md``.

May import: ``schemas``, ``transforms``, ``warehouse.settings``, ``warehouse.catalog``,
``warehouse.zones`` and the analysis parameters of ``warehouse.analysis`` (recorded in
release manifests). Never imports ``warehouse.ingest`` or ``warehouse.demo``: serving
reads the lake's tables, never the files they came from.
"""
