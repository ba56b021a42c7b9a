"""Output helpers shared by every ``myomap`` command, and the operator check (the CLI modules
import this one; it imports none of them)."""
from __future__ import annotations

import csv
import json
import sys

import click


def print_rows(cols: list[str], rows: list[tuple], fmt: str) -> None:
    """Print query rows as an aligned table, CSV or JSON (``fmt``: table, csv, json)."""
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    elif fmt == "json":
        click.echo(json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1))
    else:
        cells = [[("NULL" if v is None else str(v)) for v in r] for r in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
        click.echo(" | ".join(c.ljust(w) for c, w in zip(cols, widths)))
        click.echo("-+-".join("-" * w for w in widths))
        for r in cells:
            click.echo(" | ".join(v.ljust(w) for v, w in zip(r, widths)))
        click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def require_operator(settings, what: str) -> None:
    """Stop unless the configured identity is an operator (``what``: the command, for the message)."""
    from warehouse.settings import IdentityError, resolve_identity

    try:
        who = resolve_identity(settings)
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from None
    if not who.is_operator:
        raise click.ClickException(f"Refused: {what} is for operators; you are {who.name} ({who.role}"
                                   + (f" of site {who.site}" if who.site else "") + ").")
