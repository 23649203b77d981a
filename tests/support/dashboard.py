"""The dashboard over HTTP, in-process."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")
