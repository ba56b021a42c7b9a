"""Option types shared by ``myomap`` commands (validated before anything is opened)."""
from __future__ import annotations

import datetime as dt

import click

AS_OF_HELP = ("Snapshot id (0, 1, 2, ...) or timestamp (YYYY-MM-DD[ HH:MM[:SS]][+HH:MM], UTC when no zone): "
              "answer as the lake was then.")


class AsOf(click.ParamType):
    """``--as-of``: a snapshot id (ASCII digits) or an ISO timestamp; anything else is a usage error."""

    name = "SNAPSHOT|TIMESTAMP"

    def convert(self, value, param, ctx):
        text = str(value).strip()
        if text.isascii() and text.isdigit():
            return str(int(text))
        try:
            when = dt.datetime.fromisoformat(text) if text.isascii() else None
        except ValueError:
            when = None
        if when is None:
            self.fail(f"{value!r} is neither a snapshot id (0, 1, 2, ...) nor a timestamp "
                      "(e.g. 2026-09-14 or '2026-09-14 02:30:00+02:00').", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return when.isoformat(sep=" ")


AS_OF = AsOf()


def snapshot_error(settings, as_of: str, exc: Exception) -> click.ClickException | None:
    """A clear error for an ``--as-of`` the lake has no snapshot for (None if ``exc`` is another error)."""
    if "no snapshot found" not in str(exc).lower():
        return None
    from warehouse import catalog

    span = ""
    try:
        con = catalog.connect(settings, read_only=True)
        try:
            lo, hi, t0, t1 = con.execute("SELECT min(snapshot_id), max(snapshot_id), min(snapshot_time), "
                                         f"max(snapshot_time) FROM ducklake_snapshots('{catalog.LAKE}')").fetchone()
        finally:
            con.close()
        span = (f" The lake has snapshots {lo} to {hi}, taken from {t0:%Y-%m-%d %H:%M:%S%z} to "
                f"{t1:%Y-%m-%d %H:%M:%S%z}.")
    except Exception:  # noqa: BLE001 - the hint is optional
        pass
    kind = "snapshot" if as_of.isdigit() else "snapshot at or before"
    return click.ClickException(f"--as-of {as_of}: there is no {kind} {as_of} in this lake.{span}")
