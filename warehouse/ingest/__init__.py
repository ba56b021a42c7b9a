"""Ingest: from a site's inbox to committed, validated trials.

Owns the site manifest (``manifest``, ``manifest_init``), the vendor readers
(``readers/``), the inbox read as data (``inbox``: nothing followed) and what a file may
declare (``limits``), channel harmonisation (``harmonise``), the batch tables one trial
lands as (``tables``), their contract validation (``validation``) and the nightly
ingest steps that register, read, check and commit one file (``steps``).

May import: ``schemas``, ``transforms`` (QC and plausibility), ``warehouse.settings``,
``warehouse.catalog``, ``warehouse.zones``, ``warehouse.faults``. Never imports ``warehouse.analysis``,
``warehouse.serving`` or ``warehouse.demo``.
"""
