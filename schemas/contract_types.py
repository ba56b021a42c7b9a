"""Column and table types of the contracts (:mod:`schemas.contracts` declares the tables). No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # DuckDB type
    description: str
    unit: str | None = None
    nullable: bool = True
    allowed: tuple | None = None
    range: tuple[float | None, float | None] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    grain: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self, schema: str) -> str:
        cols = ",\n  ".join(
            f"\"{c.name}\" {c.dtype}{'' if c.nullable else ' NOT NULL'}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {schema}.{self.name} (\n  {cols}\n)"


def C(name, dtype, description, unit=None, nullable=True, allowed=None, range=None):
    return Column(name, dtype, description, unit, nullable, allowed, range)
