"""Executor: runs one claimed job and returns what happened as exactly one Outcome.

decode payload ── ValidationError ──────────────► failed (permanent, msgspec's message)
call handler ──── returns ─── encodable ────────► completed (result stored)
     │                     └─ not encodable ────► retry / failed
     ├─ raises / times out ─────────────────────► scheduled (backoff) or failed (exhausted)
     ├─ list result with exceptions (batch job) ► scheduled with only the failed items
     ├─ raises Snooze(s) ───────────────────────► scheduled in s seconds, attempt given back
     ├─ raises Fail(msg) / Cancel(msg) ─────────► failed for good / cancelled
     ├─ KeyboardInterrupt / SystemExit ─────────► pending, attempt given back; worker stops
     ├─ own scope cancelled: cancel requested ──► cancelled
     ├─ own scope cancelled: lease lost ────────► nothing (the job is no longer ours)
     └─ worker's hard stop (outer cancel) ──────► pending, attempt given back
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
import msgspec

from .._backoff import retry_delay
from .._codec import encode_json
from ..context import Cancel, HandlerOutcome, JobContext, JobInfo, Snooze
from ..errors import PayloadError
from ..events import Event, Hooks
from ..tasks import Task, Tasks
from .outcome import Outcome
from .progress import JobAccessService
from .running import RunningJob

_log = logging.getLogger("aioqueue.job")
_encoder = msgspec.json.Encoder()
_plain = msgspec.json.Decoder()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INSTANTS: dict[int, dt.datetime] = {}


def _instant(us: int) -> dt.datetime:
    """A claimed job's time (microseconds since the epoch) as a datetime. Jobs enqueued
    together share their times, so each distinct one is made once (bounded cache)."""
    when = _INSTANTS.get(us)
    if when is None:
        if len(_INSTANTS) >= 4096:
            _INSTANTS.clear()
        when = _INSTANTS[us] = _EPOCH + dt.timedelta(microseconds=us)
    return when


def _job_info(row: asyncpg.Record) -> JobInfo:
    """The handler's view of a claimed row; raises on what Python cannot hold (the claim
    returns NULL for times outside years 1-9999, e.g. an infinity written through SQL)."""
    run_at_us, created_at_us = row["run_at_us"], row["created_at_us"]
    if run_at_us is None or created_at_us is None:
        which = "run_at" if run_at_us is None else "created_at"
        raise ValueError(f"{which} is not a finite time between years 1 and 9999")
    return JobInfo(
        id=row["id"],
        kind=row["kind"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        priority=row["priority"],
        run_at=_instant(run_at_us),
        created_at=_instant(created_at_us),
        queue_name=row["queue_name"],
        unique_key=row["unique_key"],
        flags=list(row["flags"] or ()),
        meta=None if row["meta"] is None else _plain.decode(row["meta"]),
    )


def _job_outcome(job: RunningJob, state: Any, **fields: Any) -> Outcome:
    """An outcome decided from the claim alone (the handler never ran)."""
    return Outcome(
        id=job.id,
        lease_token=job.lease_token,
        kind=job.kind,
        attempt=job.attempt,
        state=state,
        **fields,
    )


_SHOWN_VALUE = re.compile(r"^(Invalid (?:enum )?value) .*?((?: - at `[^`]*`)?)$", re.S)


def validation_message(exc: msgspec.ValidationError) -> str:
    """msgspec's message names the JSON path and, for enum/Literal/tag mismatches, the value
    itself ("Invalid enum value 'hunter2' - at `$.e`"): payload data that must not reach errors
    and logs. The value is cut out; the path stays."""
    return _SHOWN_VALUE.sub(r"\1\2", str(exc))


def _error_json(
    exc: BaseException, attempt: int, *, message: str | None = None, trace: bool = True
) -> str:
    return _encoder.encode(
        {
            "message": message if message is not None else (str(exc) or type(exc).__name__),
            "type": type(exc).__qualname__,
            "traceback": "".join(traceback.format_exception(exc)) if trace else "",
            "attempt": attempt,
            "at": dt.datetime.now(dt.UTC),
        }
    ).decode()


class Executor:
    def __init__(
        self,
        tasks: Tasks,
        *,
        worker_id: str,
        state: Any,
        hooks: Hooks,
        max_result_bytes: int,
        abandoned: Callable[[Outcome], None],
        request_stop: Callable[[], None],
        stuck_grace: float,
        access: JobAccessService,
    ) -> None:
        self._access = access
        self._tasks = tasks
        self._stuck_grace = stuck_grace
        self._worker_id = worker_id
        self._state = state
        self._hooks = hooks
        self._max_result_bytes = max_result_bytes
        self._abandoned = abandoned  # the watchdog's outcome, while the handler still runs
        self._request_stop = request_stop

    async def run(self, row: asyncpg.Record, job: RunningJob) -> Outcome | None:
        """Run ``row``'s handler and return its one outcome: None if the lease was lost, or if
        the watchdog recorded it already. Sets ``job.duration`` (0 if it never started)."""
        task = self._tasks[row["kind"]]
        if job.expired():
            # The loop stalled (or the job waited) past what its lease is known to cover:
            # another worker may run it already, so it is given back unstarted.
            _log.warning(
                "job %s (%s): not started, its lease may have expired while it waited",
                job.id,
                job.kind,
            )
            return self.unstarted(job)
        try:
            info = _job_info(row)
        except Exception as exc:  # a row written through SQL that Python cannot hold
            return self._undecodable(job, exc)
        started = time.monotonic()
        if self._hooks:
            self._emit_started(info)
        watchdog = None
        if task.timeout is not None:
            watchdog = asyncio.get_running_loop().call_later(
                task.timeout + self._stuck_grace, self._abandon, task, info, job
            )
        outcome: Outcome | None = None
        try:
            outcome = await self._execute(task, info, row["payload"], job)
            if self._access.reported(info.id):  # no cancel scopes for a job that never did
                await self._flush_progress(info)
        except asyncio.CancelledError:
            outcome = self._cancelled(info, job)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            job.done = True
            job.duration = time.monotonic() - started
        if job.abandoned:
            return None  # the watchdog recorded the failure already
        if outcome is not None:
            outcome.duration = job.duration
        return outcome

    async def _flush_progress(self, info: JobInfo) -> None:
        """The job's last progress report is written before its outcome. Shielded: the
        outcome is decided already."""
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                await self._access.flush_job(info.id)
        except Exception:
            _log.exception("job %s (%s): its last progress report failed", info.id, info.kind)

    def _cancelled(self, info: JobInfo, job: RunningJob) -> Outcome | None:
        """The outcome of a handler cancelled from outside: by a cancel request, a lost lease
        (none: the job is no longer ours), or the worker's hard stop (given back at once)."""
        if job.reason == "cancel_requested":
            message = "cancelled while running (Queue.cancel or on_conflict='supersede')"
            error = _error_json(asyncio.CancelledError(), info.attempts, message=message)
            return self._outcome(info, job, "cancelled", error=error)
        if job.reason == "lease_lost":
            _log.warning("job %s (%s): lease lost; handler cancelled", info.id, info.kind)
            return None
        return self._outcome(info, job, "pending", delay=0.0, give_back=True)

    def _undecodable(self, job: RunningJob, exc: Exception) -> Outcome:
        """A claimed row the worker cannot turn into a JobInfo: failed for good, never held."""
        message = f"job row cannot be decoded: {type(exc).__name__}: {exc}"
        _log.error("job %s (%s): %s; failed permanently", job.id, job.kind, message)
        error = _error_json(exc, job.attempt, message=message, trace=False)
        return _job_outcome(job, "failed", error=error)

    def unstarted(self, job: RunningJob) -> Outcome | None:
        """The outcome of a job claimed ahead that never started: given back (attempt not
        counted), cancelled if that was asked, nothing if its lease was lost already."""
        if job.reason == "lease_lost":
            return None
        if job.reason == "cancel_requested":
            message = "cancelled before it started (Queue.cancel or on_conflict='supersede')"
            error = _error_json(asyncio.CancelledError(), job.attempt, message=message)
            return _job_outcome(job, "cancelled", error=error)
        return _job_outcome(job, "pending", delay=0.0, give_back=True)

    def _abandon(self, task: Task, info: JobInfo, job: RunningJob) -> None:
        """The handler outlived its timeout by ``stuck_grace`` (it ignores cancellation or blocks):
        record the attempt as failed now, which also clears the lease, so whatever the zombie
        returns later is dropped here and would be fenced out in the database anyway. Its slot
        stays taken until the coroutine really ends."""
        if job.done:
            return
        job.abandoned = True
        _log.error(
            "job %s (%s) ignored its %s s timeout for %s s; attempt failed, slot stuck",
            info.id,
            info.kind,
            task.timeout,
            self._stuck_grace,
        )
        message = f"timed out after {task.timeout} s and did not stop (ignored cancellation)"
        self._abandoned(self._failure(task, info, job, TimeoutError(message), message))

    async def _execute(
        self, task: Task, info: JobInfo, payload_text: str, job: RunningJob
    ) -> Outcome:
        try:
            payload = task.decoder.decode(payload_text)
        except msgspec.ValidationError as exc:
            # Permanent: retrying cannot make the payload match. Stored without the value.
            error = _error_json(exc, info.attempts, message=validation_message(exc), trace=False)
            return self._outcome(info, job, "failed", error=error)
        except (RecursionError, msgspec.DecodeError, ValueError, OverflowError) as exc:
            # e.g. nested deeper than the decoder can go (written through SQL): permanent too
            message = f"payload cannot be decoded: {type(exc).__name__}: {exc}"
            error = _error_json(exc, info.attempts, message=message, trace=False)
            return self._outcome(info, job, "failed", error=error)
        ctx = JobContext(
            info,
            state=self._state,
            worker_id=self._worker_id,
            access=self._access,
            lease_token=job.lease_token,
        )
        try:
            if task.timeout is not None:
                async with asyncio.timeout(task.timeout):
                    result = await task.fn(ctx, payload)
            else:
                result = await task.fn(ctx, payload)
        except (KeyboardInterrupt, SystemExit) as exc:
            _log.warning("job %s raised %s: stopping the worker", info.id, type(exc).__name__)
            self._request_stop()
            return self._outcome(info, job, "pending", delay=0.0, give_back=True)
        except HandlerOutcome as exc:
            return self._chosen(info, job, exc)
        except TimeoutError as exc:
            if job.reason is not None:
                raise
            return self._failure(task, info, job, exc, f"timed out after {task.timeout} s")
        except Exception as exc:
            return self._failure(task, info, job, exc)
        if isinstance(payload, list) and isinstance(result, list) and len(result) == len(payload):
            failed = [i for i, r in enumerate(result) if isinstance(r, BaseException)]
            if failed:
                return self._partial_failure(task, info, job, payload_text, result, failed)
        try:
            encoded = encode_json(result, field="result", limit=self._max_result_bytes)
        except PayloadError as exc:
            return self._failure(task, info, job, exc)
        return self._outcome(info, job, "completed", result=encoded.decode())

    def _failure(
        self,
        task: Task,
        info: JobInfo,
        job: RunningJob,
        exc: BaseException,
        message: str | None = None,
        *,
        payload: str | None = None,
    ) -> Outcome:
        error = _error_json(exc, info.attempts, message=message)
        if info.attempts >= info.max_attempts:
            return self._outcome(info, job, "failed", error=error, payload=payload)
        try:
            delay = retry_delay(task.retry_delay, info.attempts)
        except Exception as policy_exc:  # a broken retry_delay callable must not strand the job
            _log.exception("job %s: retry_delay failed; using the default", info.id)
            delay = retry_delay(None, info.attempts)
            error = _error_json(policy_exc, info.attempts)
        return self._outcome(info, job, "scheduled", error=error, payload=payload, delay=delay)

    def _chosen(self, info: JobInfo, job: RunningJob, exc: HandlerOutcome) -> Outcome:
        """The outcome a handler asked for by raising Snooze, Fail or Cancel."""
        if isinstance(exc, Snooze):
            return self._outcome(info, job, "scheduled", delay=exc.seconds, give_back=True)
        message = str(exc) or type(exc).__name__
        error = _error_json(exc, info.attempts, message=message, trace=False)
        state = "cancelled" if isinstance(exc, Cancel) else "failed"
        return self._outcome(info, job, state, error=error)

    def _partial_failure(
        self,
        task: Task,
        info: JobInfo,
        job: RunningJob,
        payload_text: str,
        result: list[Any],
        failed: list[int],
    ) -> Outcome:
        items = _plain.decode(payload_text)
        remaining = _encoder.encode([items[i] for i in failed]).decode()
        first = result[failed[0]]
        message = f"{len(failed)} of {len(items)} batch items failed; first: {first!r}"
        return self._failure(task, info, job, first, message, payload=remaining)

    def _outcome(self, info: JobInfo, job: RunningJob, state: Any, **fields: Any) -> Outcome:
        return Outcome(
            id=info.id,
            lease_token=job.lease_token,
            kind=info.kind,
            attempt=info.attempts,
            state=state,
            **fields,
        )

    def _emit_started(self, info: JobInfo) -> None:
        self._hooks.emit(
            Event(
                type="started",
                worker_id=self._worker_id,
                job_id=info.id,
                kind=info.kind,
                attempt=info.attempts,
                meta=info.meta,
            )
        )
