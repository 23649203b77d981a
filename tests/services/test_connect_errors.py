"""An unreachable server is DatabaseUnavailable (safe to retry) from every way of connecting,
never re-wrapped as ConfigurationError (which says the DSN itself is wrong)."""

from __future__ import annotations

import socket

import pytest

import aioqueue
from aioqueue._db import connect as _connect

pytestmark = pytest.mark.anyio


@pytest.fixture
def refused_dsn() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://nobody:secret@127.0.0.1:{port}/nowhere"


async def test_connect_lets_database_unavailable_through(refused_dsn: str) -> None:
    with pytest.raises(aioqueue.DatabaseUnavailable, match="cannot reach PostgreSQL") as caught:
        await _connect.connect(refused_dsn)
    assert not isinstance(caught.value, aioqueue.ConfigurationError)
    assert "secret" not in str(caught.value)


async def test_create_pool_lets_database_unavailable_through(refused_dsn: str) -> None:
    with pytest.raises(aioqueue.DatabaseUnavailable, match="cannot reach PostgreSQL") as caught:
        await _connect.create_pool(refused_dsn, min_size=1, max_size=2)
    assert not isinstance(caught.value, aioqueue.ConfigurationError)
    assert "secret" not in str(caught.value)


async def test_a_bad_dsn_is_still_a_configuration_error() -> None:
    with pytest.raises(aioqueue.ConfigurationError):
        await _connect.connect("postgresql://[::1")  # unparsable
