"""The CLI's logging: where -v may stand, the text or JSON line format, the outage filter."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys

import msgspec

from ._cli_worker import OneLinePerOutage

_VERBOSE = re.compile(r"^(-v+|--verbose)$")
# attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def verbose_first(args: list[str]) -> list[str]:
    """Move -v/-vv/--verbose given after a subcommand to the front, where click reads it:
    ``aioqueue worker app:tasks -v`` works like ``aioqueue -v worker app:tasks``. Nothing
    after ``--`` is touched."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags = [a for a in head if _VERBOSE.match(a)]
    return flags + [a for a in head if not _VERBOSE.match(a)] + tail


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``extra`` fields
    (job_id, kind, attempt, duration, …) and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return msgspec.json.encode(out, enc_hook=str).decode()


def setup_logging(verbose: int, log_format: str = "text") -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if verbose == 0:
        handler.addFilter(OneLinePerOutage())
    # a no-op when the host process has configured logging already (never touches its handlers)
    logging.basicConfig(level=level, handlers=[handler])
