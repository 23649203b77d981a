"""Input limits (SPEC "Input limits", RELIABILITY E3, E4, S1, S2): every limit raises the typed
error naming the field or JSON path BEFORE any SQL, and nothing is written."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import math
import socket
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aioqueue
from aioqueue import (
    ConfigurationError,
    InvalidJobError,
    PayloadEncodeError,
    PayloadError,
    PayloadTooLarge,
    PayloadValueError,
)

pytestmark = pytest.mark.anyio
MIB = 1024 * 1024


class Point(msgspec.Struct):
    x: float
    tags: list[Any]


@dataclasses.dataclass
class Reading:
    value: float


def nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


AWARE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
MINUS_7 = dt.timezone(-dt.timedelta(hours=7))

# (enqueue keyword arguments, error type, the field (InvalidJobError) or JSON path (Payload*))
BAD: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # payloads: un-encodable (TypeError), NUL, NaN/inf (ValueError), each with its JSON path
    ("payload object", {"payload": object()}, PayloadEncodeError, "$"),
    ("payload nested object", {"payload": {"a": [1, {"b": object()}]}}, PayloadEncodeError,
     "$.a[1].b"),
    ("payload struct field", {"payload": Point(1.0, [0, object()])}, PayloadEncodeError,
     "$.tags[1]"),
    ("payload set key", {"payload": {"ok": {(1, 2): 3}}}, PayloadEncodeError, "$.ok"),
    ("payload NUL", {"payload": {"a": [1, {"b": "x\x00y"}]}}, PayloadValueError, "$.a[1].b"),
    ("payload NUL top", {"payload": "\x00"}, PayloadValueError, "$"),
    ("payload NUL key", {"payload": {"a": [1, {"k\x00": 1}]}}, PayloadValueError, "$.a[1]"),
    ("payload NaN", {"payload": {"x": math.nan}}, PayloadValueError, "$.x"),
    ("payload inf", {"payload": [1.0, math.inf]}, PayloadValueError, "$[1]"),
    ("payload -inf", {"payload": {"x": {"y z": -math.inf}}}, PayloadValueError, "$.x['y z']"),
    ("payload NaN struct", {"payload": Point(math.nan, [])}, PayloadValueError, "$.x"),
    ("payload NaN dataclass", {"payload": Reading(math.inf)}, PayloadValueError, "$.value"),
    ("payload too large", {"payload": "x" * MIB}, PayloadTooLarge, "$"),
    ("payload too deep", {"payload": nested(100_000, 1)}, PayloadEncodeError, "$"),
    ("payload deep NaN", {"payload": nested(600, math.nan)}, PayloadValueError,
     "$" + "[0]" * 600),
    # text fields: 1-128 bytes (kind, queue_name), 1-512 (unique_key), UTF-8, no NUL
    ("kind empty", {"kind": ""}, InvalidJobError, "kind"),
    ("kind 129", {"kind": "k" * 129}, InvalidJobError, "kind"),
    ("kind multibyte 130", {"kind": "é" * 65}, InvalidJobError, "kind"),
    ("kind emoji 132", {"kind": "\U0001f600" * 33}, InvalidJobError, "kind"),
    ("kind NUL", {"kind": "a\x00b"}, InvalidJobError, "kind"),
    ("kind surrogate", {"kind": "a\ud800"}, InvalidJobError, "kind"),
    ("kind not text", {"kind": 5}, InvalidJobError, "kind"),
    ("queue_name empty", {"queue_name": ""}, InvalidJobError, "queue_name"),
    ("queue_name 129", {"queue_name": "q" * 129}, InvalidJobError, "queue_name"),
    ("queue_name multibyte", {"queue_name": "€" * 43}, InvalidJobError, "queue_name"),
    ("queue_name NUL", {"queue_name": "\x00"}, InvalidJobError, "queue_name"),
    ("unique_key empty", {"unique_key": ""}, InvalidJobError, "unique_key"),
    ("unique_key 513", {"unique_key": "u" * 513}, InvalidJobError, "unique_key"),
    ("unique_key multibyte", {"unique_key": "é" * 257}, InvalidJobError, "unique_key"),
    ("unique_key btree", {"unique_key": "u" * 3000}, InvalidJobError, "unique_key"),
    ("unique_key NUL", {"unique_key": "k\x00"}, InvalidJobError, "unique_key"),
    # numbers
    ("priority high", {"priority": 32768}, InvalidJobError, "priority"),
    ("priority low", {"priority": -32769}, InvalidJobError, "priority"),
    ("priority float", {"priority": 1.5}, InvalidJobError, "priority"),
    ("priority bool", {"priority": True}, InvalidJobError, "priority"),
    ("max_attempts 0", {"max_attempts": 0}, InvalidJobError, "max_attempts"),
    ("max_attempts negative", {"max_attempts": -3}, InvalidJobError, "max_attempts"),
    ("max_attempts int32", {"max_attempts": 2**31}, InvalidJobError, "max_attempts"),
    ("max_attempts float", {"max_attempts": 2.0}, InvalidJobError, "max_attempts"),
    # time
    ("run_at naive", {"run_at": dt.datetime(2030, 1, 1)}, InvalidJobError, "run_at"),
    ("run_at text", {"run_at": "2030-01-01T00:00:00Z"}, InvalidJobError, "run_at"),
    ("delay negative", {"delay": -0.001}, InvalidJobError, "delay"),
    ("delay negative td", {"delay": dt.timedelta(seconds=-1)}, InvalidJobError, "delay"),
    ("delay nan", {"delay": math.nan}, InvalidJobError, "delay"),
    ("delay inf", {"delay": math.inf}, InvalidJobError, "delay"),
    ("delay huge int", {"delay": 10**400}, InvalidJobError, "delay"),
    # PostgreSQL would fail with "interval out of range", aborting a tx= transaction
    ("delay overflow", {"delay": dt.timedelta.max}, InvalidJobError, "delay"),
    ("delay text", {"delay": "5"}, InvalidJobError, "delay"),
    ("delay and run_at", {"delay": 1, "run_at": AWARE}, InvalidJobError, "delay"),
    ("max_delay negative", {"unique_key": "u", "on_conflict": "replace", "max_delay": -1},
     InvalidJobError, "max_delay"),
    ("max_delay without replace", {"unique_key": "u", "max_delay": 5}, InvalidJobError,
     "max_delay"),
    # flags: at most 32 items of 1-128 bytes
    ("flags 33", {"flags": ["f"] * 33}, InvalidJobError, "flags"),
    ("flag 129", {"flags": ["ok", "f" * 129]}, InvalidJobError, "flags[1]"),
    ("flag multibyte", {"flags": ["ж" * 65]}, InvalidJobError, "flags[0]"),
    ("flag empty", {"flags": [""]}, InvalidJobError, "flags[0]"),
    ("flag NUL", {"flags": ["a\x00"]}, InvalidJobError, "flags[0]"),
    ("flag not text", {"flags": [1]}, InvalidJobError, "flags[0]"),
    ("flags a string", {"flags": "api:stripe"}, InvalidJobError, "flags"),
    # modes
    ("on_conflict unknown", {"unique_key": "u", "on_conflict": "merge"}, InvalidJobError,
     "on_conflict"),
    ("on_conflict without key", {"on_conflict": "upsert"}, InvalidJobError, "on_conflict"),
]  # fmt: skip


class StatementLog:
    """Statements asyncpg runs on one connection (query loggers are called via call_soon)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.queries: list[str] = []

    def _log(self, record: Any) -> None:
        self.queries.append(record.query)

    async def __aenter__(self) -> StatementLog:
        self.conn.add_query_logger(self._log)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0)  # one loop turn delivers every pending log record
        self.conn.remove_query_logger(self._log)


async def count(conn: asyncpg.Connection, q: aioqueue.Queue) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs'))


def split(kwargs: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    rest = dict(kwargs)
    return rest.pop("kind", "k"), rest.pop("payload", {}), rest


def check_error(exc: BaseException, error: type[Exception], where: str) -> None:
    assert type(exc) is error, repr(exc)
    if isinstance(exc, InvalidJobError):
        assert exc.field == where
        assert where in str(exc)
    else:
        assert isinstance(exc, PayloadError)
        assert (exc.field, exc.path) == ("payload", where)
        if where != "$":
            assert f"at {where}" in str(exc)


@pytest.mark.parametrize(
    ("fields", "error", "where"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
async def test_invalid_input_is_refused_before_any_sql(
    q: aioqueue.Queue,
    conn: asyncpg.Connection,
    fields: dict[str, Any],
    error: type[Exception],
    where: str,
) -> None:
    kind, payload, rest = split(fields)
    # 1. on the queue's own pool
    with pytest.raises(error) as info:
        await q.enqueue(kind, payload, **rest)
    check_error(info.value, error, where)

    # 2. inside the caller's transaction: no statement runs, the transaction stays usable
    async with q.pool.acquire() as tx_conn, tx_conn.transaction():
        async with StatementLog(tx_conn) as log:
            with pytest.raises(error) as info:
                await q.enqueue(kind, payload, tx=tx_conn, **rest)
        check_error(info.value, error, where)
        assert log.queries == []
        assert await tx_conn.fetchval("SELECT 1") == 1  # not aborted

    # 3. inside enqueue_many: the whole call is refused, naming the spec's index
    specs = [
        {"kind": "fine"},
        aioqueue.JobSpec(kind="fine.keyed", unique_key="x"),
        {"kind": kind, "payload": payload, **rest},
        {"kind": "never.reached", "priority": 10**9},
    ]
    with pytest.raises(error, match="job spec 2: ") as info:
        await q.enqueue_many(specs)
    check_error(info.value, error, where)
    if isinstance(info.value, InvalidJobError):
        assert info.value.index == 2
    assert await count(conn, q) == 0


# valid right at each limit: the limits are inclusive
GOOD: list[tuple[str, dict[str, Any]]] = [
    ("kind 128", {"kind": "k" * 128}),
    ("kind multibyte 128", {"kind": "é" * 64}),
    ("kind emoji 128", {"kind": "\U0001f600" * 32}),
    ("kind 1", {"kind": "k"}),
    ("queue_name 128", {"queue_name": "€" * 42 + "xy"}),
    ("unique_key 512", {"unique_key": "u" * 512}),
    ("unique_key multibyte 512", {"unique_key": "é" * 256}),
    ("priority bounds", {"priority": 32767}),
    ("priority low", {"priority": -32768}),
    ("max_attempts 1", {"max_attempts": 1}),
    ("max_attempts int32", {"max_attempts": 2**31 - 1}),
    ("delay 0", {"delay": 0}),
    ("delay timedelta", {"delay": dt.timedelta(days=365 * 50)}),
    ("run_at aware", {"run_at": dt.datetime(2030, 1, 1, tzinfo=MINUS_7)}),
    ("flags 32 x 128", {"flags": ["f" * 128] * 32}),
    ("flags multibyte", {"flags": ["ж" * 64]}),
    ("flags tuple", {"flags": ("a", "b")}),
    ("payload naive datetime", {"payload": {"at": dt.datetime(2024, 1, 1)}}),
    ("payload null", {"payload": None}),
    ("payload 'null' text", {"payload": {"x": "null", "y": "\\u0000"}}),
    ("max_delay with replace", {"unique_key": "u", "on_conflict": "replace", "max_delay": 5}),
]  # fmt: skip


@pytest.mark.parametrize("fields", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
async def test_values_at_the_limits_are_stored(q: aioqueue.Queue, fields: dict[str, Any]) -> None:
    kind, payload, rest = split(fields)
    out = await q.enqueue(kind, payload, **rest)
    job = await q.get_job(out.id)
    assert job.kind == kind
    for name in ("queue_name", "unique_key", "priority", "max_attempts"):
        if name in rest:
            assert getattr(job, name) == rest[name]
    if "flags" in rest:
        assert job.flags == list(rest["flags"])
    if "run_at" in rest:
        assert job.run_at == rest["run_at"]
    many = await q.enqueue_many([{"kind": kind, "payload": payload, **rest}])
    assert len(many) == 1


async def test_payload_size_limit_is_exact(dsn: str, schema: str) -> None:
    """Encoded size == limit passes, one byte more does not (default 1 MiB, configurable)."""
    q = await aioqueue.Queue.connect(dsn, schema=schema, max_payload_bytes=100)
    try:
        at_limit = "x" * 98  # encodes as 100 bytes with its quotes
        await q.enqueue("k", at_limit)
        with pytest.raises(PayloadTooLarge, match="101 bytes"):
            await q.enqueue("k", at_limit + "y")
        with pytest.raises(PayloadTooLarge, match="job spec 1: "):
            await q.enqueue_many([{"kind": "k"}, {"kind": "k", "payload": [at_limit]}])
        assert await q.pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1
    finally:
        await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await q.close()
    big = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        just_under = {"blob": "x" * (MIB - 20)}
        assert len(msgspec.json.encode(just_under)) <= MIB
        out = await big.enqueue("big", just_under)
        assert (await big.get_job(out.id)).payload == just_under
        with pytest.raises(PayloadTooLarge):
            await big.enqueue("big", {"blob": "x" * MIB})
    finally:
        await big.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await big.close()


async def test_bulk_of_plain_specs_checks_each_payload(dsn: str, schema: str) -> None:
    """``{"kind", "payload"}`` dicts of a known kind are encoded as one document; the checks
    still apply to each payload: a bad one is named by its index, the limit is per payload
    (not per batch), and a JSON null is stored as given."""
    q = await aioqueue.Queue.connect(dsn, schema=schema, max_payload_bytes=100)
    try:
        await q.enqueue_many([{"kind": "k", "payload": {}}])  # "k" is a known kind now
        ok = [{"kind": "k", "payload": {"i": i}} for i in range(2)]
        with pytest.raises(PayloadValueError, match=r"job spec 2: payload at \$\.x is nan"):
            await q.enqueue_many([*ok, {"kind": "k", "payload": {"x": float("nan")}}])
        with pytest.raises(PayloadValueError, match=r"job spec 1: payload at \$\.s contains a NUL"):
            await q.enqueue_many([ok[0], {"kind": "k", "payload": {"s": "a\x00"}}])
        with pytest.raises(PayloadTooLarge, match="job spec 0: "):
            await q.enqueue_many([{"kind": "k", "payload": "x" * 99}, *ok])
        near = [{"kind": "k", "payload": "x" * 90} for _ in range(3)]  # 300 bytes together
        nulls = {"kind": "k", "payload": {"x": None}}
        out = await q.enqueue_many([*near, nulls])
        assert len(out) == 4
        assert (await q.get_job(out[3].id)).payload == {"x": None}
        assert await q.pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 5
    finally:
        await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await q.close()


async def test_invalid_input_with_an_idle_tx_connection_is_a_validation_error(
    q: aioqueue.Queue,
) -> None:
    """Validation runs first: the idle connection is neither used nor put in a transaction."""
    async with q.pool.acquire() as idle:
        async with StatementLog(idle) as log:
            with pytest.raises(InvalidJobError, match="priority"):
                await q.enqueue("k", priority=10**6, tx=idle)
        assert log.queries == []
        assert not idle.is_in_transaction()


async def test_enqueue_many_refuses_malformed_specs_naming_the_index(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    cases: list[tuple[Any, str, str]] = [
        ({"kind": "k", "colour": "red"}, "colour", "unknown job spec field"),
        ({"kind": "k", "job_key": "x", "delayMs": 5}, "delayMs, job_key", "unknown"),
        ({"payload": {}}, "kind", "is required"),
        ("send.email", "spec", "must be a JobSpec or a dict"),
        (None, "spec", "must be a JobSpec or a dict"),
    ]
    for bad, field, message in cases:
        with pytest.raises(InvalidJobError, match=message) as info:
            await q.enqueue_many([{"kind": "ok"}, {"kind": "ok", "unique_key": "u"}, bad])
        assert (info.value.field, info.value.index) == (field, 2)
        assert str(info.value).startswith("job spec 2: ")
    assert await count(conn, q) == 0


# -- schema names (S1) ------------------------------------------------------------------------

BAD_SCHEMAS = [
    "public; DROP TABLE x",
    '"aq"',
    "aq-x",
    "a" * 49,
    "a" * 64,
    "",
    "schéma",
    "аq",  # Cyrillic a
    "pg_x",
    "Aq",
    "1aq",
    "aq x",
    "aq\x00",
    "aq'--",
    "aq.jobs",
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", BAD_SCHEMAS)
async def test_bad_schema_names_are_refused_before_any_sql(
    q: aioqueue.Queue, conn: asyncpg.Connection, name: str
) -> None:
    unreachable = f"postgresql://nobody@127.0.0.1:{closed_port()}/nowhere"
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        await aioqueue.Queue.connect(unreachable, schema=name)
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        aioqueue.Queue(q.pool, schema=name)
    if len(name.encode()) < 64 and "\x00" not in name:  # names PostgreSQL could hold
        found = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", name)
        assert found == 0


async def test_the_unreachable_dsn_really_is_unreachable() -> None:
    """Control for the test above: with a valid schema name the same DSN fails to connect."""
    unreachable = f"postgresql://nobody@127.0.0.1:{closed_port()}/nowhere"
    with pytest.raises(aioqueue.DatabaseUnavailable, match="cannot reach PostgreSQL at"):
        await aioqueue.Queue.connect(unreachable, schema="aq")


async def test_schema_of_another_type_is_refused(q: aioqueue.Queue) -> None:
    for bad in (5, b"aq", ["aq"]):  # None means the default: $AIOQUEUE_SCHEMA, else aioqueue
        with pytest.raises(ConfigurationError, match="invalid schema name"):
            aioqueue.Queue(q.pool, schema=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["aq", "aq_1", "_aq", "a" * 48, "select", "user"])
async def test_good_schema_names_work_end_to_end(dsn: str, name: str) -> None:
    q = await aioqueue.Queue.connect(dsn, schema=name)
    try:
        out = await q.enqueue("k", unique_key="u")
        assert (await q.enqueue("k", unique_key="u")).id == out.id
        assert q.config.channel == f"aioqueue_{name}"
        assert len(q.config.channel.encode()) <= 63  # a longer LISTEN would be truncated
    finally:
        await q.pool.execute(f'DROP SCHEMA "{name}" CASCADE')
        await q.close()


# -- injection fuzz (S2) ----------------------------------------------------------------------

LIMITS = {"kind": 128, "unique_key": 512, "queue_name": 128, "flags": 128}
TOKENS = [
    *("'", '"', ";", "--", "$$", "\\", "\x00", "%", "_", "*/", "/*", "NULL", "a", " ", "é"),
    *("\u200f", "\u202e", "\u2066", "\ufeff", "\U0001f600", "\n", "\r\n", "\t"),  # RTL etc.
    *("\ud800", "\udfff"),  # lone surrogates: not UTF-8
    *("'); DROP TABLE canary; --", "$fn$", "\\x00", "\\u0000", "E'\\''"),
]
TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(TOKENS), max_size=25).map("".join),
    st.builds(lambda s, n: s * n, st.sampled_from([*TOKENS, "ab"]), st.integers(1, 5000)),
)


def valid(value: str, limit: int) -> bool:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 1 <= size <= limit and "\x00" not in value


async def test_fuzzed_text_is_refused_or_stored_byte_for_byte(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    await conn.execute(
        f"""CREATE TABLE "{s}".canary (v text); INSERT INTO "{s}".canary VALUES ('alive')"""
    )
    serial = itertools.count()
    outcomes = {"stored": 0, "refused": 0}

    async def one(field: str, value: str) -> None:
        n = next(serial)
        base: dict[str, Any] = {"kind": f"fuzz.{n}"}
        first = {**base, "flags": ["ok", value]} if field == "flags" else {**base, field: value}
        calls: list[dict[str, Any]] = [first]
        if field != "unique_key":  # also through add_jobs, which only keyed specs reach
            calls.append({**calls[0], "unique_key": f"key.{n}"})
        before = await count(conn, q)
        if not valid(value, LIMITS[field]):
            for spec in calls:
                with pytest.raises(InvalidJobError) as info:
                    await q.enqueue(**spec)
                assert info.value.field == ("flags[1]" if field == "flags" else field)
                with pytest.raises(InvalidJobError):
                    await q.enqueue_many([{"kind": "fine"}, spec])
            assert await count(conn, q) == before
            outcomes["refused"] += 1
            return
        for spec in calls:
            single = await q.enqueue(**spec)
            many = await q.enqueue_many([spec])
            for out in (single, many[0]):
                job = await q.get_job(out.id)
                stored = job.flags[1] if field == "flags" else getattr(job, field)
                assert stored == value
                # byte for byte, as PostgreSQL sees it
                column = "flags[2]" if field == "flags" else field
                raw = await conn.fetchval(
                    f"SELECT convert_to({column}, 'UTF8') FROM \"{s}\".jobs WHERE id = $1", out.id
                )
                assert raw == value.encode("utf-8")
            if "unique_key" in spec:  # the same key dedupes exactly onto the same job
                assert many[0] == aioqueue.EnqueueResult(single.id, True)
        outcomes["stored"] += 1

    def run_examples() -> None:
        @settings(
            max_examples=100,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(field=st.sampled_from(sorted(LIMITS)), value=TEXT)
        def example(field: str, value: str) -> None:
            anyio.from_thread.run(one, field, value)

        example()

    # Hypothesis drives synchronous examples: run it in a worker thread, each example's
    # database work back on this event loop, against the one queue of this test
    await anyio.to_thread.run_sync(run_examples)
    assert outcomes["stored"] > 10 and outcomes["refused"] > 10, outcomes
    assert await conn.fetchval(f'SELECT v FROM "{s}".canary') == "alive"
    assert await conn.fetchval(f"SELECT to_regclass('\"{s}\".jobs') IS NOT NULL")
