"""Flow control on the dashboard (issue 20): limits, running and held-back jobs on the overview;
pause/resume buttons only with actions enabled, and only with the form token."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

import aioqueue
from aioqueue.dashboard import create_app


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")


async def test_flow_table_and_pause_resume_actions(q: aioqueue.Queue) -> None:
    await q.set_limits("report", concurrency=3, key_concurrency=1, rate_limit=(10, 60))
    await q.set_limits("per_key", key_rate_limit=(5, 1))
    await q.enqueue("report", {}, concurrency_key="tenant:1")
    await q.pause(queue_name="emails")
    async with client(create_app(q)) as http:  # read-only: the table, no buttons
        page = await http.get("/")
        assert 'data-flow-kind="report"' in page.text and "0 / 3" in page.text
        assert "10 / 60 s<" in page.text and "5 / 1 s per key" in page.text
        assert 'data-flow-queue="emails"' in page.text
        assert "Pause</button>" not in page.text
        assert (await http.post("/flow/pause", data={"kind": "report"})).status_code == 403
    app = create_app(q, allow_actions=True)
    token = app.state.dashboard.token
    async with client(app) as http:
        assert "Pause</button>" in (await http.get("/")).text
        forged = await http.post("/flow/pause", data={"kind": "report", "token": "guess"})
        assert forged.status_code == 403
        assert not (await q.limits()).kinds[1].paused
        done = await http.post("/flow/pause", data={"kind": "report", "token": token})
        assert done.status_code == 303
        assert (await q.limits()).kinds[1].paused
        await http.post("/flow/resume", data={"kind": "report", "token": token})
        await http.post("/flow/resume", data={"queue_name": "emails", "token": token})
        flow = await q.limits()
        assert not flow.kinds[1].paused and flow.paused_queues == []
