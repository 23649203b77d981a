"""Pure: validate job specs against the input limits and encode them for ``add_jobs``.

Everything here runs before any SQL; an invalid spec raises an error naming the field (and the
index inside ``enqueue_many``), and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from . import config
from ._codec import MAX_DEPTH, depth_over, encode_json
from .errors import InvalidJobError, PayloadError
from .types import ON_CONFLICT_MODES, JobSpec, Ref

_SPEC_FIELDS = frozenset(JobSpec.__struct_fields__)


# PostgreSQL raises "interval out of range" near 9.2e12 s, and inside the caller's tx= that
# error would abort their whole transaction: cap delays well below, before any SQL.


def _seconds(field: str, value: object, index: int | None) -> float:
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    else:
        raise InvalidJobError(field, f"must be seconds or a timedelta, got {value!r}", index=index)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidJobError(field, f"must be a finite number >= 0, got {value!r}", index=index)
    if seconds > config.MAX_DELAY_SECONDS:
        raise InvalidJobError(
            field, f"must be at most {config.MAX_DELAY_SECONDS} seconds (100 years)", index=index
        )
    return seconds


def check_run_at(value: object, index: int | None = None) -> dt.datetime:
    """An aware datetime inside the range the database accepts (config.RUN_AT_MIN/MAX)."""
    if not isinstance(value, dt.datetime):
        raise InvalidJobError("run_at", "must be a datetime", index=index)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJobError("run_at", "must be timezone-aware", index=index)
    try:
        inside = config.RUN_AT_MIN <= value < config.RUN_AT_MAX
    except OverflowError:  # an offset that pushes datetime.min/max past what Python holds
        inside = False
    if not inside:
        raise InvalidJobError(
            "run_at",
            f"must be from {config.RUN_AT_MIN:%Y-%m-%d} to before {config.RUN_AT_MAX:%Y-%m-%d} "
            f"UTC, got {value.isoformat()}",
            index=index,
        )
    return value


def _text(field: str, value: object, max_bytes: int, index: int | None) -> str:
    if not isinstance(value, str):
        raise InvalidJobError(field, f"must be a string, got {type(value).__name__}", index=index)
    size = len(value.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= max_bytes:
        raise InvalidJobError(
            field, f"must be 1-{max_bytes} bytes of UTF-8, got {size} bytes", index=index
        )
    if "\x00" in value:
        raise InvalidJobError(field, "must not contain a NUL character", index=index)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJobError(field, "must be valid UTF-8 (lone surrogate)", index=index) from None
    return value


def _int(field: str, value: object, lo: int, hi: int, index: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidJobError(field, f"must be an integer, got {value!r}", index=index)
    if not lo <= value <= hi:
        raise InvalidJobError(field, f"must be between {lo} and {hi}, got {value}", index=index)
    return value


def as_spec(item: JobSpec | Mapping[str, Any], index: int | None = None) -> JobSpec:
    """Accept a JobSpec or a dict with JobSpec's keys."""
    if isinstance(item, JobSpec):
        return item
    if not isinstance(item, Mapping):
        raise InvalidJobError(
            "spec", f"must be a JobSpec or a dict, got {type(item).__name__}", index=index
        )
    unknown = set(item) - _SPEC_FIELDS
    if unknown:
        raise InvalidJobError(
            ", ".join(sorted(map(str, unknown))), "unknown job spec field", index=index
        )
    if "kind" not in item:
        raise InvalidJobError("kind", "is required", index=index)
    return JobSpec(**item)


def encode_spec(
    spec: JobSpec, *, max_payload_bytes: int, index: int | None = None
) -> dict[str, Any]:
    """Validate one spec and return the JSON object ``add_jobs`` expects."""
    out: dict[str, Any] = {"kind": _text("kind", spec.kind, config.KIND_MAX_BYTES, index)}
    try:
        payload = encode_json(spec.payload, field="payload", limit=max_payload_bytes)
    except PayloadError as exc:
        if index is not None:
            exc.args = (f"job spec {index}: {exc.args[0]}",)
        raise
    out["payload"] = msgspec.Raw(payload)
    if spec.delay is not None and spec.run_at is not None:
        raise InvalidJobError("delay", "give delay or run_at, not both", index=index)
    if spec.delay is not None:
        out["delay"] = _seconds("delay", spec.delay, index)
    if spec.run_at is not None:
        out["run_at"] = check_run_at(spec.run_at, index)
    priority = _int("priority", spec.priority, config.SMALLINT_MIN, config.SMALLINT_MAX, index)
    if priority != 0:
        out["priority"] = priority
    if spec.on_conflict not in ON_CONFLICT_MODES:
        raise InvalidJobError(
            "on_conflict",
            f"must be one of {', '.join(ON_CONFLICT_MODES)}, got {spec.on_conflict!r}",
            index=index,
        )
    if spec.unique_key is not None:
        out["unique_key"] = _text("unique_key", spec.unique_key, config.UNIQUE_KEY_MAX_BYTES, index)
        out["on_conflict"] = spec.on_conflict
    if spec.max_delay is not None:
        if spec.on_conflict != "replace":
            raise InvalidJobError(
                "max_delay", "only applies with on_conflict='replace'", index=index
            )
        out["max_delay"] = _seconds("max_delay", spec.max_delay, index)
    if spec.max_attempts is not None:
        out["max_attempts"] = _int("max_attempts", spec.max_attempts, 1, config.INT_MAX, index)
    if spec.queue_name is not None:
        out["queue_name"] = _text("queue_name", spec.queue_name, config.QUEUE_NAME_MAX_BYTES, index)
    if spec.flags is not None:
        out["flags"] = encode_flags(spec.flags, index)
    if spec.concurrency_key is not None:
        out["concurrency_key"] = _text(
            "concurrency_key", spec.concurrency_key, CONCURRENCY_KEY_MAX_BYTES, index
        )
    if spec.depends_on is not None:
        if spec.unique_key is not None:
            raise InvalidJobError(
                "depends_on",
                "cannot be combined with unique_key (a waiting job holds no key)",
                index=index,
            )
        out["depends_on"] = encode_depends_on(spec.depends_on, index)
    if spec.on_parent_failure != "cancel":
        if spec.on_parent_failure != "run":
            raise InvalidJobError(
                "on_parent_failure",
                f"must be 'cancel' or 'run', got {spec.on_parent_failure!r}",
                index=index,
            )
        out["on_parent_failure"] = "run"
    if spec.meta is not None:
        out["meta"] = encode_meta(spec.meta, index)
    return out


CONCURRENCY_KEY_MAX_BYTES = 256  # the CHECK of jobs.concurrency_key (0010)


def encode_depends_on(parents: object, index: int | None) -> list[Any]:
    """Job ids, and ``Ref(i)`` of an earlier spec of the same call, as add_jobs takes them."""
    if isinstance(parents, str) or not isinstance(parents, list | tuple):
        raise InvalidJobError("depends_on", "must be a list of job ids", index=index)
    if len(parents) > config.MAX_PARENTS:
        raise InvalidJobError(
            "depends_on", f"at most {config.MAX_PARENTS} parents, got {len(parents)}", index=index
        )
    out: list[Any] = []
    for parent in parents:
        if isinstance(parent, Ref):
            if index is None or not isinstance(parent.index, int) or not 0 <= parent.index < index:
                raise InvalidJobError(
                    "depends_on",
                    f"{parent!r} must name an earlier spec of the same enqueue_many call",
                    index=index,
                )
            out.append({"ref": parent.index})
        elif isinstance(parent, int) and not isinstance(parent, bool) and 1 <= parent < 2**63:
            out.append(parent)
        else:
            raise InvalidJobError(
                "depends_on", f"entries must be job ids or Ref(i), got {parent!r}", index=index
            )
    return out


def encode_meta(meta: object, index: int | None) -> msgspec.Raw:
    """A small dict of string keys (user headers such as a W3C traceparent)."""
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise InvalidJobError("meta", "must be a dict with string keys", index=index)
    try:
        data = encode_json(meta, field="meta", limit=config.META_MAX_BYTES)
    except PayloadError as exc:
        raise InvalidJobError("meta", str(exc), index=index) from None
    return msgspec.Raw(data)


def encode_flags(flags: Iterable[str], index: int | None = None) -> list[str]:
    if isinstance(flags, str) or not isinstance(flags, list | tuple | set | frozenset):
        raise InvalidJobError("flags", "must be a list of strings", index=index)
    items = list(flags)
    if len(items) > config.FLAGS_MAX_COUNT:
        raise InvalidJobError(
            "flags", f"at most {config.FLAGS_MAX_COUNT} flags, got {len(items)}", index=index
        )
    return [_text(f"flags[{i}]", f, config.FLAG_MAX_BYTES, index) for i, f in enumerate(items)]


# How a batch of specs is written: "bare" when each is only {kind, payload} (every other
# column takes its default), "plain" when none has a unique_key, max_delay or workflow key
# (nothing to dedupe: one INSERT), else "dedupe" (the add_jobs function, every on_conflict mode).
Route = Literal["bare", "plain", "dedupe"]

_encoder = msgspec.json.Encoder()


def loose_list(values: Any) -> Any:
    """A list or tuple argument (``flags=``, ``depends_on=``) as a list; anything else is left
    as it is, for validation to name."""
    return list(values) if isinstance(values, list | tuple) else values


def dumps(obj: Any) -> str:
    """The one JSON encoder of specs (``msgspec.Raw`` payloads pass through as they are)."""
    return _encoder.encode(obj).decode()


def encode_specs(
    items: Iterable[JobSpec | Mapping[str, Any]], *, max_payload_bytes: int
) -> tuple[str, Route]:
    """Validate all specs (the first invalid one raises, naming its index) and encode the array;
    also how to write them (``Route``)."""
    if not isinstance(items, list):
        items = list(items)
    batch = _bare_batch(items, max_payload_bytes)
    if batch is not None:
        return batch, "bare"
    objects = []
    for i, item in enumerate(items):
        obj = _known_bare_spec(item, max_payload_bytes)
        if obj is None:
            obj = encode_spec(as_spec(item, i), max_payload_bytes=max_payload_bytes, index=i)
            if obj.keys() == _BARE_KEYS:
                _remember_kind(obj["kind"])
        objects.append(obj)
    return dumps(objects), _route(objects)


def encode_one(spec: JobSpec, *, max_payload_bytes: int) -> tuple[str, Route]:
    """One spec, as a JSON array of one for the same statements as ``encode_specs``."""
    objects = [encode_spec(spec, max_payload_bytes=max_payload_bytes)]
    return dumps(objects), _route(objects)


def _route(objects: list[dict[str, Any]]) -> Route:
    route: Route = "bare"
    for o in objects:
        if "unique_key" in o or "max_delay" in o or not _WORKFLOW_KEYS.isdisjoint(o):
            return "dedupe"
        if o.keys() != _BARE_KEYS:
            route = "plain"
    return route


# Kinds already validated, so that the common spec ({"kind": ..., "payload": ...} of a known
# kind, in enqueue_many or enqueue) skips building a JobSpec: it pays in the encode benchmark
# (benchmarks/encode.py, RESULTS.md). Bounded: kinds made up per call only fill it once.
KNOWN_KINDS_MAX = 1024
_KNOWN_KINDS: dict[str, None] = {}
_BARE_KEYS = frozenset({"kind", "payload"})
# keys only the add_jobs function reads (migration 0009)
_WORKFLOW_KEYS = frozenset({"depends_on", "on_parent_failure", "meta", "group_id"})


def _remember_kind(kind: str) -> None:
    """Record a kind that passed the checks: the next specs of it skip them."""
    if len(_KNOWN_KINDS) < KNOWN_KINDS_MAX:
        _KNOWN_KINDS[kind] = None


def _bare_batch(items: list[Any], max_payload_bytes: int) -> str | None:
    """The common bulk call, ``{"kind", "payload"}`` dicts of known kinds, encoded as one
    document (benchmarks/encode.py). None (take the per-spec path, which also makes every
    error message) if any spec differs, or the encoding holds a token jsonb might refuse
    (``null`` also stands for NaN, ``\\u0000`` for NUL), or the whole batch is over the
    payload limit (then no single payload can be over it)."""
    known = _KNOWN_KINDS
    for item in items:
        if type(item) is not dict or item.keys() != _BARE_KEYS:
            return None
        kind = item["kind"]
        if type(kind) is not str or kind not in known:
            return None
    try:
        data = _encoder.encode(items)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return None
    if len(data) > max_payload_bytes or b"null" in data or b"\\u0000" in data:
        return None
    if depth_over(data, MAX_DEPTH + 2):  # the batch's array and each spec's object
        return None  # the per-spec path names the payload
    return data.decode()


def _known_bare_spec(item: object, max_payload_bytes: int) -> dict[str, Any] | None:
    """The encoded form of a ``{"kind", "payload"}`` dict of a known kind, or None to take the
    full path (which also makes every error message)."""
    if type(item) is not dict or not item.keys() <= _BARE_KEYS:
        return None
    kind = item.get("kind")
    if type(kind) is not str or kind not in _KNOWN_KINDS:
        return None
    try:
        payload = encode_json(item.get("payload", {}), field="payload", limit=max_payload_bytes)
    except PayloadError:
        return None
    return {"kind": kind, "payload": msgspec.Raw(payload)}


def encode_plain(kind: object, payload: Any, *, max_payload_bytes: int) -> str:
    """The payload text of a job with every option at its default, after the checks
    ``encode_spec`` makes of its kind and payload (same errors, same order)."""
    if type(kind) is not str or kind not in _KNOWN_KINDS:
        _remember_kind(_text("kind", kind, config.KIND_MAX_BYTES, None))
    return encode_json(payload, field="payload", limit=max_payload_bytes).decode()
