"""myomap for analysts: the lake in Python, under the same member rules as ``myomap sql``.

::

    import myomap

    with myomap.open() as lake:                      # $MYOMAP_LAKE, your identity, the current snapshot
        onsets = lake.sql("SELECT * FROM v_onsets WHERE muscle = ?", ["soleus"])   # polars DataFrame
        fresh = lake.cohort("condition=fresh; muscle=tibialis_anterior")
        metrics = lake.table("emg_cycle_metrics", cohort=fresh).collect()          # LazyFrame -> frame
        emg = lake.signals(trial_id, kind="emg", layout="wide")                    # units in column names
        cyc = lake.cycles(trial_id)                                                 # 0-100 % of each cycle
        lake.extract("out/", format="bids", cohort=fresh)                           # as `myomap extract`

Guide and runnable example: ``docs/api.md``. This package is wiring only (like ``flows/``): the
session, the queries and the extracts live in ``warehouse/serving``.
"""
from __future__ import annotations

from myomap.lake import Cohort, CohortFilterError, Lake, LakeError, open  # noqa: A004 (myomap.open)
from warehouse.serving.reading import UnknownTrialError
from warehouse.serving.gate import ReadOnlyViolation
from warehouse.settings import IdentityError


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("myomap")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


__version__ = _version()
__all__ = ["Cohort", "CohortFilterError", "IdentityError", "Lake", "LakeError", "ReadOnlyViolation",
           "UnknownTrialError", "open", "__version__"]
