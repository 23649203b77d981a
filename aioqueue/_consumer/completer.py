"""Completer: buffers outcomes and writes each batch with ONE fenced statement.

Flushes when ``flush_size`` outcomes are waiting or ``flush_interval`` after the first one,
whichever comes first; one flush at a time. The producer waits before claiming while the
backlog is over ``max_backlog`` (backpressure); ``on_flushed`` hears which were accepted.
Transient database errors are retried with backoff. When the service stops, the last flush
runs shielded from cancellation, bounded by ``final_timeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from .._db.connect import Outage, replace_connections
from .._db.errors import TRANSIENT
from .._db.queries import Executor, Queries
from .._service import RETRYING
from .outcome import Outcome

_log = logging.getLogger("aioqueue.worker")
Flushed = Callable[[list[Outcome], set[int]], None]


def _ignore(batch: list[Outcome], accepted: set[int]) -> None:
    pass


class Completer:
    name = "completer"

    def __init__(
        self,
        db: Executor,
        queries: Queries,
        *,
        on_flushed: Flushed = _ignore,
        flush_interval: float,
        flush_size: int,
        max_backlog: int | None = None,
        final_timeout: float = 5.0,
        max_write: float = 30.0,
        outage: Outage | None = None,
    ) -> None:
        self._db = db
        self._queries = queries
        self.on_flushed = on_flushed  # told which outcomes were accepted (the foreman)
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._max_backlog = max_backlog or flush_size * 10
        self._final_timeout = final_timeout
        self._max_write = max_write  # a shielded write on a dead connection must still end
        self._outage = outage or Outage()
        self._buffer: list[Outcome] = []
        self._has_items = anyio.Event()
        self._full = anyio.Event()
        self._space = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()

    def put(self, outcome: Outcome) -> None:
        self._buffer.append(outcome)
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._has_items.set()
        if len(self._buffer) >= self._flush_size:
            self._full.set()

    async def wait_for_space(self) -> None:
        """Backpressure: executors call this before starting more work."""
        while len(self._buffer) >= self._max_backlog:
            self._space = anyio.Event()
            await self._space.wait()

    async def wait_idle(self) -> None:
        """Until every outcome put so far has been written (or rejected)."""
        await self._idle.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._has_items.wait()
                if len(self._buffer) < self._flush_size:
                    with anyio.move_on_after(self._flush_interval):
                        await self._full.wait()
                await self._flush(retry_for=None)
        finally:
            with anyio.CancelScope(shield=True):
                await self._flush(retry_for=self._final_timeout)

    async def _flush(self, *, retry_for: float | None) -> None:
        """Write everything buffered; retry transient errors (forever, or for ``retry_for`` s)."""
        batch, self._buffer = self._buffer, []
        self._has_items = anyio.Event()
        self._full = anyio.Event()
        self._space.set()
        if not batch:
            self._idle.set()
            return
        delay = 0.05
        deadline = None if retry_for is None else anyio.current_time() + retry_for
        written = False
        uncertain = False  # an earlier try may have committed: a rejection needs a second look
        try:
            while True:
                try:
                    # Shielded: a write cancelled while its commit is in flight (a stop) would
                    # leave its fate unknown, and the resend would be rejected by the fence.
                    with anyio.CancelScope(shield=True):
                        accepted = await self._write(batch, deadline)
                        if uncertain and len(accepted) < len(batch):
                            accepted |= await self._settled_before(batch, accepted, deadline)
                    written = True
                    self._outage.recovered("completer")
                    break
                except TRANSIENT as exc:
                    uncertain = True
                    if deadline is not None and anyio.current_time() >= deadline:
                        _log.error(
                            "completer: gave up writing %d outcomes (%s); their leases will "
                            "expire and the jobs will be rescued",
                            len(batch),
                            type(exc).__name__,
                        )
                        return
                    self._outage.failed("completer", exc)
                    _log.warning(
                        "completer: flush failed (%s); retrying", type(exc).__name__, extra=RETRYING
                    )
                    await replace_connections(self._db, exc)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            self.on_flushed(batch, accepted)
        except BaseException:
            if not written:  # cancelled while retrying (stopping): the final flush takes them
                self._buffer[:0] = batch
            raise
        finally:
            if not self._buffer:
                self._idle.set()

    async def _settled_before(
        self, batch: list[Outcome], accepted: set[int], deadline: float | None
    ) -> set[int]:
        """Of the outcomes this resend had rejected, those an earlier, failed-looking try did
        write (same state, same lease token): accepted, not lost."""
        rest = [o for o in batch if o.id not in accepted]
        timeout = self._write_timeout(deadline)
        with anyio.fail_after(timeout):
            return await self._queries.job_outcomes_settled(
                self._db,
                ids=[o.id for o in rest],
                lease_tokens=[o.lease_token for o in rest],
                states=[o.state for o in rest],
            )

    def _write_timeout(self, deadline: float | None) -> float:
        if deadline is None:
            return self._max_write
        return min(max(deadline - anyio.current_time(), 0.1), self._max_write)

    async def _write(self, batch: list[Outcome], deadline: float | None) -> set[int]:
        with anyio.fail_after(self._write_timeout(deadline)):
            if all(o.state == "completed" for o in batch):
                rows = await self._queries.job_complete_many(self._db, outcomes=batch)
            else:
                rows = await self._queries.job_finish_many(self._db, outcomes=batch)
        return {r["id"] for r in rows}
