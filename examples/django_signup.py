"""A Django view that enqueues in its own transaction with `aioqueue.sync`.

    AIOQUEUE_DSN=postgresql://... python examples/django_signup.py

The view records a signup and enqueues the welcome e-mail inside `transaction.atomic()`: the job
exists only if the signup commits. A second signup with the same address is deduped by its
`unique_key`; a signup whose transaction fails leaves no job behind. Run it with no Django
project: the settings are configured below from AIOQUEUE_DSN (psycopg 3 driver).
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from typing import Any

import django
from django.conf import settings


def database_settings(dsn: str) -> dict[str, Any]:
    """Django's DATABASES entry for a postgresql:// URL (host may be a socket dir in ?host=)."""
    url = urllib.parse.urlsplit(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    query = dict(urllib.parse.parse_qsl(url.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/") or "postgres",
        "USER": urllib.parse.unquote(url.username or "postgres"),
        "PASSWORD": urllib.parse.unquote(url.password or ""),
        "HOST": url.hostname or query.get("host", ""),
        "PORT": str(url.port or query.get("port", "")),
    }


settings.configure(
    DATABASES={"default": database_settings(os.environ["AIOQUEUE_DSN"])},
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[],
)
django.setup()

from django.db import connection, transaction  # noqa: E402 - after settings
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

import aioqueue  # noqa: E402
from aioqueue import sync  # noqa: E402
from aioqueue.config import resolve_schema  # noqa: E402


def signup(request: HttpRequest) -> JsonResponse:
    email = request.POST["email"]
    with transaction.atomic():
        # ... create the user here, on the same connection ...
        out = sync.enqueue(
            connection, "send.welcome", {"email": email}, unique_key=f"welcome:{email}"
        )
        if request.POST.get("fail"):
            raise RuntimeError("the signup failed after the enqueue: both roll back")
    return JsonResponse({"job": out.id, "deduped": out.deduped})


urlpatterns = [path("signup", signup)]


async def install_schema() -> None:
    async with await aioqueue.Queue.connect():  # migrates the schema on first use
        pass


def main() -> None:
    asyncio.run(install_schema())
    client = Client(raise_request_exception=False)
    first = client.post("/signup", {"email": "ada@example.com"}).json()
    again = client.post("/signup", {"email": "ada@example.com"}).json()
    failed = client.post("/signup", {"email": "bob@example.com", "fail": "1"})
    with connection.cursor() as cur:
        schema = resolve_schema()
        cur.execute(f'SELECT count(*) FROM "{schema}".jobs WHERE kind = %s', ["send.welcome"])
        (jobs,) = cur.fetchone()
    print(f"signup: job {first['job']} (deduped={first['deduped']})")
    print(f"again: job {again['job']} (deduped={again['deduped']})")
    print(f"failed signup: HTTP {failed.status_code}")
    print(f"welcome jobs: {jobs}")  # 1: the deduped one is the same, the failed one rolled back


if __name__ == "__main__":
    main()
