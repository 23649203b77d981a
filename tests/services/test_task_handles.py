"""Typed task handles: ``@tasks.task`` returns a TaskHandle whose ``enqueue`` takes the handler's
payload type (checked by mypy), and which still runs the handler when called."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import msgspec
from mypy import api as mypy_api

import aioqueue

ROOT = Path(__file__).resolve().parents[2]


class Email(msgspec.Struct):
    to: str
    subject: str = "hi"


tasks = aioqueue.Tasks()


@tasks.task("send.email", max_attempts=3)
async def send_email(ctx: aioqueue.JobContext, payload: Email) -> dict[str, str]:
    return {"sent": payload.to}


async def test_a_handle_enqueues_its_kind_and_runs_its_handler(q: aioqueue.Queue) -> None:
    assert isinstance(send_email, aioqueue.TaskHandle)
    assert send_email.kind == "send.email" and send_email.__name__ == "send_email"
    out = await send_email.enqueue(q, Email(to="a@b.com"), delay=60, priority=3)
    job = await q.get_job(out.id)
    assert (job.kind, job.payload, job.priority) == (
        "send.email",
        {"to": "a@b.com", "subject": "hi"},
        3,
    )
    assert job.state is aioqueue.JobState.SCHEDULED
    many = await send_email.enqueue_many(q, [Email(to=f"{i}@b.com") for i in range(3)])
    assert len(many) == 3
    delayed = await send_email.enqueue_many(q, [Email(to="x")], delay=30)
    assert (await q.get_job(delayed[0].id)).state is aioqueue.JobState.SCHEDULED
    await aioqueue.Worker(q, tasks).run(until_empty=True)
    assert [(await q.get_job(o.id)).result for o in many] == [
        {"sent": f"{i}@b.com"} for i in range(3)
    ]
    # called directly, it is the handler
    info: Any = None
    assert await send_email(aioqueue.JobContext(info), Email(to="z")) == {"sent": "z"}
    assert tasks["send.email"].payload_type is Email


def test_mypy_checks_the_payload_against_the_handler(tmp_path: Path) -> None:
    source = tmp_path / "use_handles.py"
    source.write_text(
        textwrap.dedent(
            """
            import aioqueue
            import msgspec

            class Email(msgspec.Struct):
                to: str

            tasks = aioqueue.Tasks()

            @tasks.task("send.email")
            async def send_email(ctx: aioqueue.JobContext, payload: Email) -> None: ...

            async def produce(q: aioqueue.Queue) -> None:
                await send_email.enqueue(q, Email(to="a"), delay=60)
                await send_email.enqueue_many(q, [Email(to="b")])
                await send_email.enqueue(q, {"to": "a"})  # line 16: wrong payload type
                await q.enqueue("send.email", {"to": "a"})  # string kinds keep working
            """
        )
    )
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out + err
    assert len(errors) == 1, out
    assert "use_handles.py:16:" in errors[0] and "Email" in errors[0], out
