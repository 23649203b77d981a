"""Statements about the schema itself and the session: migrations, session settings."""

from __future__ import annotations

from typing import Any

from ._base import Executor, QueriesBase, statement_texts


class SchemaQueries(QueriesBase):
    async def schema_exists(self, db: Executor) -> bool:
        return bool(await db.fetchval(self._sql["schema_exists"], f'"{self.schema}".migrations'))

    async def migrations_lock(self, db: Executor) -> None:
        """Serialise migrations of this schema (until the transaction ends)."""
        await db.execute(self._sql["migrations_lock"], self.schema)

    async def migrations_bootstrap(self, db: Executor) -> None:
        await db.execute(self._sql["migrations_bootstrap"])

    async def migrations_applied(self, db: Executor) -> list[int]:
        return list(await db.fetchval(self._sql["migrations_applied"]))

    async def migrations_record(
        self, db: Executor, *, version: int, name: str, breaking: bool
    ) -> None:
        await db.execute(self._sql["migrations_record"], version, name, breaking)

    # Session statements name no schema: the pool's connection setup runs them before any
    # Queries exists.

    @staticmethod
    async def session_jit(db: Any, *, value: str, local: bool = False) -> None:
        await db.execute(statement_texts()["session_jit"], value, local)

    @staticmethod
    async def session_plan_cache_mode(db: Any, *, value: str, local: bool = False) -> None:
        await db.execute(statement_texts()["session_plan_cache_mode"], value, local)

    @staticmethod
    async def session_synchronous_commit(db: Any, *, value: str, local: bool = False) -> None:
        await db.execute(statement_texts()["session_synchronous_commit"], value, local)

    @staticmethod
    async def reader_read_only(db: Any) -> None:
        await db.execute(statement_texts()["reader_read_only"])
