"""Pure msgspec encoding with the checks jsonb needs (no I/O).

msgspec encodes NaN/Infinity as ``null`` and NUL characters as ``\\u0000``, which jsonb rejects at
insert time. Both are caught here, before anything is written, with the JSON path of the value.
The full walk only runs when the fast byte scan finds a suspicious token.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from .errors import PayloadEncodeError, PayloadTooLarge, PayloadValueError

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

# Payloads and results nest at most this deep (arrays and objects). Far above any real document,
# far below where decoding in the worker would hit Python's recursion limit.
MAX_DEPTH = 100


_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\\')
_STRINGS = re.compile(rb'"[^"]*"')


def depth_over(data: bytes, limit: int) -> bool:
    """True if the JSON text ``data`` nests arrays/objects deeper than ``limit``. C-speed: one
    pass cuts the text down to brackets, quotes and backslashes; strings are dropped (exact
    while no backslash is left, i.e. nothing escaped), then innermost bracket pairs are removed
    one level per pass. Text with escapes is decoded and walked instead (rare)."""
    skeleton = data.translate(None, _NOT_STRUCTURE)
    if b"\\" in skeleton:
        return _walk_depth_over(data, limit)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:  # strings holding brackets
        skeleton = _STRINGS.sub(b"", skeleton)
    skeleton = skeleton.translate(_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"()", b"")
    return bool(skeleton)


def _walk_depth_over(data: bytes, limit: int) -> bool:
    try:
        doc = _decoder.decode(data)
    except RecursionError:
        return True
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return False


def _child_path(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if text.isidentifier():
        return f"{path}.{text}"
    return f"{path}[{text!r}]"


def _children(value: Any) -> Iterator[tuple[object, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        yield from enumerate(value)


def _find_bad_value(value: Any, path: str) -> tuple[str, str] | None:
    """First NUL-containing string or non-finite float in document order, as (path, problem).
    Iterative, so a payload nested as deep as msgspec allows never hits Python's recursion
    limit here."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return (where, "contains a NUL character (\\u0000)")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return (where, f"is {item!r} (not valid JSON)")
            continue
        if isinstance(item, dict):
            for key in item:
                if isinstance(key, str) and "\x00" in key:
                    return (where, f"has a key with a NUL character: {key!r}")
        children = [(child, _child_path(where, key)) for key, child in _children(item)]
        stack.extend(reversed(children))
    return None


def _fields(value: Any) -> Iterator[tuple[object, Any]]:
    """Children of containers, and the fields of msgspec Structs and dataclasses."""
    if isinstance(value, msgspec.Struct):
        yield from ((f, getattr(value, f)) for f in value.__struct_fields__)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        yield from _children(value)


def _find_unencodable(value: Any, path: str) -> str:
    """Path of the first sub-value msgspec refuses (the value itself if none is narrower)."""
    for key, child in _fields(value):
        try:
            _encoder.encode(child)
        except (TypeError, ValueError, OverflowError):
            return _find_unencodable(child, _child_path(path, key))
    return path


def encode_json(value: Any, *, field: str = "payload", limit: int | None = None) -> bytes:
    """Encode ``value`` for a jsonb column, or raise a Payload* error naming the JSON path."""
    if value is None:
        return b"null"
    try:
        data = _encoder.encode(value)
    except RecursionError:
        raise PayloadEncodeError(
            f"{field} is nested deeper than {MAX_DEPTH} levels", path="$", field=field
        ) from None
    except (TypeError, ValueError, OverflowError) as exc:
        try:
            path = _find_unencodable(value, "$")
        except RecursionError:
            path = "$"
        raise PayloadEncodeError(
            f"{field} at {path} cannot be encoded to JSON: {exc}", path=path, field=field
        ) from None
    if b"null" in data or b"\\u0000" in data:
        found = _find_bad_value(msgspec.to_builtins(value), "$")
        if found:
            path, problem = found
            raise PayloadValueError(f"{field} at {path} {problem}", path=path, field=field)
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and depth_over(data, MAX_DEPTH):
        raise PayloadEncodeError(
            f"{field} is nested deeper than {MAX_DEPTH} levels", path="$", field=field
        )
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(
            f"{field} is {len(data)} bytes encoded, over the limit of {limit} bytes",
            field=field,
        )
    return data


def decode_json(data: str | bytes | None) -> Any:
    """Decode a jsonb value as read from the database (None stays None)."""
    if data is None:
        return None
    return _decoder.decode(data)


def convert(value: Any, type_: Any) -> Any:
    """Validate builtins against a msgspec-supported type (raises msgspec.ValidationError)."""
    return msgspec.convert(value, type_, strict=False)
