"""Fixtures of the service tests."""

from __future__ import annotations

import pytest

from aioqueue._db.migrate import latest_version
from tests.support.cli import aq


@pytest.fixture
def base(dsn: str, schema: str) -> list[str]:
    """The CLI's global options for the test schema, migrated through the CLI."""
    proc = aq("--dsn", dsn, "--schema", schema, "migrate")
    assert proc.returncode == 0, proc.stderr
    applied = list(range(1, latest_version() + 1))
    assert f"applied migrations {applied}" in proc.stdout
    return ["--dsn", dsn, "--schema", schema]
