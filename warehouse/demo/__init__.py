"""The synthetic demo consortium (``myomap demo``, the end-to-end tests and benches).

Owns the signal models with known truth (``signals``: EMG bursts, GRF, markers) and
the consortium generator that writes them as vendor files and manifests into site
inboxes (``consortium``). Its only public entry point is
:func:`generate_consortium`; other rooms use the demo through it, never through its
internals.

May import: ``schemas``, ``transforms`` and file-format libraries (ezc3d). Never
imports the catalog or another room: the demo writes inbox files, and the nightly
flow ingests them like any site's.
"""
from warehouse.demo.consortium import generate_consortium

__all__ = ["generate_consortium"]
