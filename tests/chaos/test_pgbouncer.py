"""Behind PgBouncer in transaction pooling mode (Debian's ``pgbouncer``, started here on
loopback in front of the server under test): enqueue, enqueue_many, ``tx=``, a worker with
``listen=False``, results (``get_job``, ``wait``) and the admin calls all work."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from tests.conftest import skip_unless_required
from tests.support.faultproxy import tcp_target

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def bouncer(dsn: str) -> Iterator[str]:
    """The DSN of the test database through a PgBouncer in transaction mode."""
    if not Path(PGBOUNCER).exists():
        skip_unless_required("pgbouncer", "pgbouncer not found (apt-get install pgbouncer)")
    host, port, database = tcp_target(dsn)
    user = urllib.parse.urlsplit(dsn).username or "postgres"
    work = Path(tempfile.mkdtemp(prefix="aioqueue-pgbouncer-"))
    listen = _free_port()
    (work / "users.txt").write_text(f'"{user}" ""\n')
    (work / "pgbouncer.ini").write_text(
        f"""
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {work / "users.txt"}
pool_mode = transaction
default_pool_size = 5
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
logfile = {work / "pgbouncer.log"}
"""
    )
    command = [PGBOUNCER, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(work, "postgres")
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        asyncio.run(_until_accepting(listen, process))
        yield f"postgresql://{user}@127.0.0.1:{listen}/{database}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


async def _until_accepting(port: int, process: subprocess.Popen[bytes]) -> None:
    with anyio.fail_after(20):
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"pgbouncer exited: {output}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                await anyio.sleep(0.05)  # the process has not bound its port yet


async def test_queue_and_worker_through_pgbouncer(bouncer: str, schema: str) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("add")
    async def add(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> int:
        return int(payload["a"]) + int(payload["b"])

    async with await aioqueue.Queue.connect(bouncer, schema=schema, transaction_pooling=True) as q:
        one = await q.enqueue("add", {"a": 1, "b": 2})
        keyed = await q.enqueue("add", {"a": 2, "b": 2}, unique_key="k1")
        again = await q.enqueue("add", {"a": 2, "b": 2}, unique_key="k1")
        assert again.deduped and again.id == keyed.id
        specs = [{"kind": "add", "payload": {"a": i, "b": 0}} for i in range(9)]
        bulk = await q.enqueue_many(specs)
        mixed = await q.enqueue_many(
            [
                {"kind": "add", "payload": {"a": 5, "b": 5}, "priority": 3},
                {"kind": "add", "payload": {"a": 6, "b": 6}, "unique_key": "k2"},
            ]
        )
        later = await q.enqueue("add", {"a": 0, "b": 0}, delay=3600)
        # concurrent calls: several client connections share the pooler's few server ones,
        # so a named prepared statement would be missing on the server connection lent next
        singles, lists = await asyncio.gather(
            asyncio.gather(*(q.enqueue("add", {"a": i, "b": 1}) for i in range(40))),
            asyncio.gather(
                *(q.enqueue_many([{"kind": "add", "payload": {"a": i, "b": 2}}]) for i in range(20))
            ),
        )
        assert len({o.id for o in singles} | {o.id for (o,) in lists}) == 60

        # tx=: the application's own connection through the pooler
        conn = await asyncpg.connect(bouncer, statement_cache_size=0)
        try:
            async with conn.transaction():
                in_tx = await q.enqueue("add", {"a": 10, "b": 10}, tx=conn)
            tr = conn.transaction()
            await tr.start()
            dropped = await q.enqueue("add", {"a": 0, "b": 1}, tx=conn)
            await tr.rollback()
        finally:
            await conn.close()
        with pytest.raises(aioqueue.JobNotFound):
            await q.get_job(dropped.id)

        with pytest.raises(aioqueue.ConfigurationError, match="listen=False"):
            aioqueue.Worker(q, tasks)  # LISTEN cannot work behind a transaction pooler
        worker = aioqueue.Worker(q, tasks, listen=False, poll_interval=0.05)
        results: dict[int, Any] = {}

        async def wait_for(job_id: int) -> None:
            results[job_id] = (await q.wait(job_id, timeout=60)).result

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for, one.id)  # woken by polling: no LISTEN here either
            tg.start_soon(wait_for, in_tx.id)
            await worker.run(until_empty=True)
        assert results == {one.id: 3, in_tx.id: 20}
        assert (await q.get_job(keyed.id)).result == 4
        assert [(await q.get_job(o.id)).result for o in bulk] == list(range(9))
        assert [(await q.get_job(o.id)).result for o in mixed] == [10, 12]

        # the admin calls
        stats = await q.stats()
        assert stats is not None
        assert {j.id for j in await q.list_jobs(state="completed", limit=100)} >= {one.id}
        assert (await q.cancel(later.id)).state == "cancelled"
        retried = await q.retry(later.id)
        assert (await q.get_job(retried.id)).state in ("pending", "scheduled")
        assert await q.complete([retried.id]) == [retried.id]
        await q.history(minutes=5)
        assert [j.id for j in await q.lineage(one.id)] == [one.id]
