"""The dashboard: pages, filters, keyset pagination, escaping, opt-in actions and their CSRF token
(over HTTP, in-process), the CLI command, and the real thing in headless Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import aioqueue
from aioqueue.dashboard import create_app
from tests.conftest import ROOT, skip_unless_required
from tests.support.dashboard import client

CHROMIUM = os.environ.get("AIOQUEUE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / ".aioqueue" / "screenshots"
HOSTILE = '<script>alert("x")</script>'


async def seed(q: aioqueue.Queue) -> dict[str, list[int]]:
    """A realistic mix: thumbnails done and waiting, one failed mail, one hostile kind."""
    specs = [{"kind": "thumb", "payload": {"i": i}} for i in range(60)]
    thumbs = [o.id for o in await q.enqueue_many(specs)]
    await q.complete(thumbs[:40])
    mail = await q.enqueue("mail.send", {"to": "a@b.com", "note": "<b>hi</b>"})
    await q.fail([mail.id], "smtp down")
    hostile = await q.enqueue(HOSTILE, {"html": "<img src=x onerror=alert(1)>"})
    later = await q.enqueue("report", {}, delay=3600)
    return {"thumbs": thumbs, "failed": [mail.id], "hostile": [hostile.id], "later": [later.id]}


async def test_overview_counts_and_security_headers(q: aioqueue.Queue) -> None:
    await seed(q)
    async with client(create_app(q)) as http:
        page = await http.get("/")
    assert page.status_code == 200
    assert re.search(r'data-kind="thumb" data-state="completed"><a [^>]*>40<', page.text)
    assert re.search(r'data-kind="thumb" data-state="pending"><a [^>]*>20<', page.text)
    assert 'data-testid="due">21<' in page.text  # 20 thumbs + the hostile job; not the delayed one
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert HOSTILE not in page.text and "&lt;script&gt;" in page.text


async def test_filters_and_keyset_pagination(q: aioqueue.Queue) -> None:
    ids = await seed(q)
    async with client(create_app(q)) as http:
        first = await http.get("/jobs", params={"kind": "thumb"})
        shown = [int(i) for i in re.findall(r'data-job-id="(\d+)"', first.text)]
        assert shown == sorted(ids["thumbs"], reverse=True)[:50]
        older = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert older is not None
        second = await http.get(older.group(1).replace("&amp;", "&"))
        rest = [int(i) for i in re.findall(r'data-job-id="(\d+)"', second.text)]
        assert rest == sorted(ids["thumbs"], reverse=True)[50:]
        failed = await http.get("/jobs", params={"state": "failed"})
        assert re.findall(r'data-job-id="(\d+)"', failed.text) == [str(ids["failed"][0])]
        for bad in ({"state": "bogus"}, {"after": "1 OR 1=1"}, {"kind": "a\x00b"}):
            response = await http.get("/jobs", params=bad)
            assert response.status_code == 400, bad
            assert 'data-testid="error-message"' in response.text


async def test_job_page_escapes_and_shows_lineage(q: aioqueue.Queue) -> None:
    ids = await seed(q)
    retried = await q.retry(ids["failed"][0])
    async with client(create_app(q)) as http:
        hostile = await http.get(f"/jobs/{ids['hostile'][0]}")
        assert "<img src=x" not in hostile.text and "&lt;img src=x" in hostile.text
        old = await http.get(f"/jobs/{ids['failed'][0]}")
        assert "smtp down" in old.text
        assert f'href="http://dash/jobs/{retried.id}"' in old.text  # lineage links to the retry
        assert (await http.get("/jobs/999999")).status_code == 404


async def test_actions_are_opt_in_and_need_the_form_token(q: aioqueue.Queue) -> None:
    ids = await seed(q)
    failed = ids["failed"][0]
    async with client(create_app(q)) as http:  # read-only
        page = await http.get(f"/jobs/{failed}")
        assert "Retry</button>" not in page.text
        assert (await http.post(f"/jobs/{failed}/retry")).status_code == 403
    app = create_app(q, allow_actions=True)
    token = app.state.dashboard.token
    async with client(app) as http:
        page = await http.get(f"/jobs/{failed}")
        assert "Retry</button>" in page.text
        forged = await http.post(f"/jobs/{failed}/retry", data={"token": "guess"})
        assert forged.status_code == 403
        assert len(await q.list_jobs(kind="mail.send")) == 1  # nothing happened
        done = await http.post(f"/jobs/{failed}/retry", data={"token": token})
        assert done.status_code == 303
        new_id = int(done.headers["location"].split("/jobs/")[1].split("?")[0])
        assert (await q.get_job(new_id)).rescheduled_from == failed
        again = await http.post(f"/jobs/{failed}/cancel", data={"token": token})
        assert again.status_code == 409 and "failed" in again.text
        later = ids["later"][0]
        await http.post(f"/jobs/{later}/cancel", data={"token": token})
        assert (await q.get_job(later)).state == "cancelled"


async def test_mounted_in_a_users_app_and_connecting_by_itself(dsn: str, schema: str) -> None:
    async with await aioqueue.Queue.connect(dsn, schema=schema) as q:
        await q.enqueue("mounted.kind", {})
        app = Starlette(routes=[Mount("/admin/queue", app=create_app(dsn=dsn, schema=schema))])
        try:
            async with client(app) as http:
                page = await http.get("/admin/queue/jobs")
            assert "mounted.kind" in page.text
            assert 'href="http://dash/admin/queue/static/style.css"' in page.text
        finally:
            await app.routes[0].app.state.dashboard.close()  # type: ignore[attr-defined]
            await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_serves_and_stops_on_sigint(dsn: str, schema: str, tmp_path: Path) -> None:
    env = {**os.environ, "AIOQUEUE_DSN": dsn}
    base = [sys.executable, "-m", "aioqueue", "--schema", schema]
    subprocess.run([*base, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen(
        [*base, "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "read-only" in proc.stdout.readline()  # printed just before serving
        deadline = time.monotonic() + 30
        while True:  # the socket opens right after the banner
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.02)
        assert response.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    missing = subprocess.run(
        [sys.executable, "-m", "aioqueue", "--schema", "nope_x", "dashboard"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "nope_x" in missing.stderr and "Traceback" not in missing.stderr


@pytest.fixture
async def served(q: aioqueue.Queue) -> AsyncIterator[tuple[str, dict[str, list[int]]]]:
    """The dashboard with actions enabled on a real loopback socket, in this event loop."""
    ids = await seed(q)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(
        uvicorn.Config(create_app(q, allow_actions=True), log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", ids
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        skip_unless_required(
            "chromium", f"{CHROMIUM} not found: install Debian's chromium (apt-get install it)"
        )
    return CHROMIUM


async def test_in_headless_chromium(
    served: tuple[str, dict[str, list[int]]], q: aioqueue.Queue, chromium: str
) -> None:
    from playwright.async_api import async_playwright

    url, ids = served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(url + "/")
        cell = page.locator('td[data-kind="thumb"][data-state="completed"]')
        assert (await cell.inner_text()).strip() == "40"
        assert (await page.get_by_test_id("due").inner_text()) == "21"
        assert await page.get_by_text(HOSTILE, exact=True).count() == 1  # shown, as text
        await page.screenshot(path=str(SCREENSHOTS / "dashboard-overview.png"), full_page=True)

        await page.get_by_role("link", name="Jobs", exact=True).click()
        await page.select_option("select[name=state]", "failed")
        await page.get_by_role("button", name="Filter").click()
        rows = page.locator("table.jobs tbody tr")
        assert await rows.count() == 1
        await rows.first.get_by_role("link").click()
        assert (await page.get_by_test_id("state").inner_text()) == "failed"
        await page.get_by_role("button", name="Retry").click()
        notice = await page.get_by_role("status").inner_text()
        new_id = int(re.findall(r"\d+", notice)[0])
        assert (await page.get_by_test_id("state").inner_text()) == "pending"
        await page.screenshot(path=str(SCREENSHOTS / "dashboard-job.png"), full_page=True)
        await page.goto(f"{url}/jobs/{ids['hostile'][0]}")
        await browser.close()
    job = await q.get_job(new_id)
    assert job.state == "pending" and job.rescheduled_from == ids["failed"][0]
    assert dialogs == []  # no injected script ran
    assert (SCREENSHOTS / "dashboard-overview.png").stat().st_size > 10_000
