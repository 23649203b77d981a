"""FastAPI + SQLAlchemy 2 (async) + aioqueue: enqueue a job in the request's own transaction.

    python examples/fastapi_app.py          # serves http://127.0.0.1:8000 (PORT=... to change)

    curl -X POST localhost:8000/signup -H 'content-type: application/json' \\
         -d '{"email": "ada@example.com"}'                        # 201 {"user_id": 1, "job_id": 1}
    curl localhost:8000/jobs/1                                    # {"state": "completed", ...}
    curl -X POST 'localhost:8000/signup?fail=1' -H 'content-type: application/json' \\
         -d '{"email": "bob@example.com"}'                        # 402: no user, no job

`POST /signup` inserts the user row AND enqueues its welcome email in ONE transaction: the job
exists only if the request commits. A signup that fails after the enqueue leaves neither the user
nor the job behind, and a committed signup always gets its email (no "row saved, job lost" window,
no "email sent to a user who does not exist"). The worker pool runs inside the app: the lifespan
starts it with the server and stops it gracefully on shutdown.

The database: $AIOQUEUE_DSN (or $DATABASE_URL), else the embedded PostgreSQL that aioqueue starts.
Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the `users` table in `public`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy import DateTime, String, func, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")


# -- the app's own table --------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    welcomed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# -- background jobs ------------------------------------------------------------------------------


class WelcomeEmail(msgspec.Struct):
    """The job's payload: stored as JSON, validated against this type when the job runs."""

    user_id: int
    email: str


tasks = aioqueue.Tasks()


@tasks.task("send.welcome", max_attempts=5, timeout=30)
async def send_welcome(ctx: aioqueue.JobContext, payload: WelcomeEmail) -> dict[str, str]:
    """Runs in the worker pool. An exception retries the job later (exponential backoff)."""
    ctx.log.info("sending the welcome email to %s", payload.email)
    # ... call your email provider here ...
    sessions: async_sessionmaker[AsyncSession] = ctx.state["sessions"]
    async with sessions.begin() as session:
        await session.execute(
            update(User).where(User.id == payload.user_id).values(welcomed_at=func.now())
        )
    return {"sent_to": payload.email}  # stored as the job's result


# -- the app --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One Queue (an asyncpg pool) for enqueueing and for the worker pool. With no DSN configured
    # this starts the embedded PostgreSQL server; migrations are applied on connect.
    queue = await aioqueue.Queue.connect(schema=SCHEMA)
    # SQLAlchemy uses the same database, through the asyncpg driver (which `tx=session` needs):
    # the DSN the queue resolved, with the `postgresql+asyncpg` scheme SQLAlchemy expects.
    assert queue.dsn is not None
    engine = create_async_engine(make_url(queue.dsn).set(drivername="postgresql+asyncpg"))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)  # a real app would use Alembic

    # The handlers get `ctx.state`: share the app's resources with them there.
    worker = aioqueue.Worker(queue, tasks, concurrency=20, state={"sessions": sessions})
    worker_task = asyncio.create_task(worker.run())
    app.state.queue = queue
    app.state.sessions = sessions
    try:
        yield
    finally:
        # Stop claiming, give running jobs 10 s to finish; jobs still running after that go back
        # to `pending` (attempt given back) and another worker picks them up.
        await worker.stop(timeout=10)
        await worker_task
        await engine.dispose()
        await queue.close()


app = FastAPI(title="aioqueue + FastAPI example", lifespan=lifespan)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def get_queue(request: Request) -> aioqueue.Queue:
    queue: aioqueue.Queue = request.app.state.queue
    return queue


SessionDep = Annotated[AsyncSession, Depends(get_session)]
QueueDep = Annotated[aioqueue.Queue, Depends(get_queue)]


class SignupIn(BaseModel):
    email: str


class SignupOut(BaseModel):
    user_id: int
    job_id: int


@app.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(
    body: SignupIn, session: SessionDep, queue: QueueDep, fail: bool = False
) -> SignupOut:
    try:
        # Commits when the block ends normally; ANY exception raised inside rolls it all back.
        async with session.begin():
            user = User(email=body.email)
            session.add(user)
            await session.flush()  # INSERT now: user.id is known, a duplicate email raises here
            # Same transaction as the INSERT (tx=session): the job is visible to workers only
            # once this commits, and workers are woken at that commit.
            job = await queue.enqueue(
                "send.welcome",
                WelcomeEmail(user_id=user.id, email=user.email),
                tx=session,
            )
            if fail:
                # Stands for anything failing after the enqueue: a later INSERT, a payment call,
                # a bug. The user row and the job are rolled back together.
                raise HTTPException(status.HTTP_402_PAYMENT_REQUIRED, "card declined (simulated)")
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "email already registered") from None
    return SignupOut(user_id=user.id, job_id=job.id)


@app.get("/jobs/{job_id}")
async def get_job(job_id: int, queue: QueueDep) -> dict[str, Any]:
    try:
        job = await queue.get_job(job_id)
    except aioqueue.JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job") from None
    # the payload is left out on purpose: it may hold personal data
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "attempts": job.attempts,
        "result": job.result,
        "error": job.error.message if job.error else None,
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
