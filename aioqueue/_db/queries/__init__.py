"""The one way to reach SQL: every ``.sql`` file in ``_db/sql/`` has one typed method on
``Queries`` (keyword arguments named after the statement's parameters), grouped by area."""

from __future__ import annotations

from ._base import (
    MAX_MAINTENANCE_BATCH,
    MIGRATIONS_DIR,
    SQL_DIR,
    Executor,
    render,
    statement_texts,
)
from .admin import AdminQueries
from .consume import ConsumeQueries
from .enqueue import Added, EnqueueQueries, Inserted, sync_add_jobs_text
from .flow import FlowQueries
from .history import HistoryQueries
from .schema import SchemaQueries
from .workflow import WorkflowQueries

__all__ = [
    "MAX_MAINTENANCE_BATCH",
    "MIGRATIONS_DIR",
    "SQL_DIR",
    "Added",
    "Executor",
    "Inserted",
    "Queries",
    "render",
    "statement_texts",
    "sync_add_jobs_text",
]


class Queries(
    EnqueueQueries,
    ConsumeQueries,
    AdminQueries,
    FlowQueries,
    WorkflowQueries,
    HistoryQueries,
    SchemaQueries,
):
    """The statements of one schema."""
