"""Fixtures of the chaos tests."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import pytest

from tests.support.faultproxy import FaultProxy, fault_proxy, tcp_target


@pytest.fixture
async def proxy(dsn: str) -> AsyncIterator[FaultProxy]:
    host, port, _ = tcp_target(dsn)
    async with fault_proxy(host, port, urllib.parse.urlsplit(dsn).username or "postgres") as p:
        yield p
