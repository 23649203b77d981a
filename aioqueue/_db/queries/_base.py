"""Loading and rendering the ``.sql`` files; the base every area of ``Queries`` builds on.

The schema is substituted once per ``Queries`` (after validation) through the ``/*schema*/``
marker; values always travel as bind parameters.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import asyncpg

from ...config import channel_for, validate_schema

SQL_DIR = Path(__file__).parent.parent / "sql"
MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
SCHEMA_MARKER = "/*schema*/"
CHANNEL_MARKER = "/*channel*/"

Executor = asyncpg.Connection | asyncpg.Pool | asyncpg.pool.PoolConnectionProxy


@cache
def statement_texts() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(SQL_DIR.glob("*.sql"))}


def render(text: str, schema: str) -> str:
    """Substitute the (validated) schema and its channel into SQL text."""
    schema = validate_schema(schema)
    return text.replace(SCHEMA_MARKER, f'"{schema}"').replace(
        CHANNEL_MARKER, f"'{channel_for(schema)}'"
    )


class QueriesBase:
    """The rendered statements of one schema; the areas' mixins run them."""

    def __init__(self, schema: str) -> None:
        self.schema = validate_schema(schema)
        self._sql = {name: render(text, schema) for name, text in statement_texts().items()}

    def text(self, name: str) -> str:
        """A statement's rendered text, for EXPLAIN in the plan guards; to run one, call its
        method."""
        return self._sql[name]


# rescue and prune batches: their statements bound their plans' cost with a constant LIMIT
MAX_MAINTENANCE_BATCH = 1000


def check_batch(limit: int) -> None:
    if not 1 <= limit <= MAX_MAINTENANCE_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_MAINTENANCE_BATCH}, got {limit}")


def ids_from_text(text: str | None) -> list[int]:
    """Ids sent as one comma-separated text (NULL when there are none)."""
    return list(map(int, text.split(","))) if text else []
