"""The worker process behind ``aioqueue worker``: signal handling, ``--processes``, and what
the CLI prints for errors and outages (one line each, never a traceback)."""

from __future__ import annotations

import asyncio
import collections
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from . import config
from .errors import ConfigurationError
from .queue import Queue
from .tasks import Tasks
from .worker import Worker

# asyncpg's pool failing to reconnect because the server is down, restarting or unreachable
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)

# Values no interface should produce but SQL can store (a payload nested thousands deep, a BC
# or infinite timestamp): reading or writing them fails with these, which say what is wrong.
_VALUE_ERRORS: dict[type[BaseException], str] = {
    RecursionError: "a value is nested too deeply to process",
    OverflowError: "a value is out of the range Python can represent (e.g. a BC date)",
    ValueError: "invalid value",
}


def describe_error(exc: BaseException) -> str:
    """One line for an error aioqueue did not anticipate; the traceback only with -vv."""
    detail = f"{type(exc).__name__}: {config.mask_dsn(' '.join(str(exc).split()))}"
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        traceback.print_exception(exc, file=sys.stderr)
    for kind, meaning in _VALUE_ERRORS.items():
        if isinstance(exc, kind):
            return f"{meaning} ({detail})"
    return f"unexpected {detail} (run with -vv for the traceback)"


class OneLinePerOutage(logging.Filter):
    """What an operator reads during an outage: the worker's "database unavailable" and
    "available again" lines, not each component's retries nor asyncpg's tracebacks of its pool
    failing to reconnect (-v shows them all). asyncpg's other pool errors stay, as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "retrying", False):
            return False
        if record.name.startswith("asyncpg") and record.exc_info:
            exc = record.exc_info[1]
            if isinstance(exc, _UNREACHABLE):
                return False  # the server is down or restarting: the outage line says so
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {config.mask_dsn(str(exc))}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def load_tasks(spec: str) -> Tasks:
    """Import ``module:attribute`` (from the current directory too) and check it is a Tasks."""
    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        dotted = module_name.removesuffix(".py").replace("/", ".").replace("\\", ".")
        raise ConfigurationError(
            f"give a module, not a file: {dotted.strip('.')}:{attr or 'tasks'} "
            f"(run from the folder that holds the package), got {spec!r}"
        )
    if not module_name or not attr:
        raise ConfigurationError(f"expected module:attribute (e.g. myapp.jobs:tasks), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if _is_missing(module_name, exc):
            raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    except SyntaxError as exc:  # the file and line are the message's own
        where = f"{exc.filename}, line {exc.lineno}" if exc.lineno else exc.filename
        raise ConfigurationError(
            f"cannot import {module_name!r}: SyntaxError: {exc.msg} ({where})"
        ) from None
    except Exception as exc:  # the module's own code raised while being imported
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    if not hasattr(module, attr):
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}")
    tasks = getattr(module, attr)
    if not isinstance(tasks, Tasks):
        raise ConfigurationError(
            f"{spec} is a {type(tasks).__name__}, not an aioqueue.Tasks registry"
        )
    return tasks


def _is_missing(module_name: str, exc: ImportError) -> bool:
    """The module itself (or a package on its path) does not exist, as opposed to an import
    failing inside it."""
    return isinstance(exc, ModuleNotFoundError) and (
        exc.name is not None and (module_name + ".").startswith(exc.name + ".")
    )


def _import_failure(module_name: str, exc: BaseException) -> str:
    """Importing the module raised: the error and where (the innermost frame outside Python's
    import machinery), in one line instead of a traceback."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")
    ]
    where = f" (at {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    message = " ".join(str(exc).split())  # one line, whatever the module raised
    return f"importing {module_name!r} raised {type(exc).__name__}: {message}{where}"


async def run_worker(
    connect: Callable[[], Awaitable[Queue]],
    tasks: Tasks,
    concurrency: int,
    settings: dict[str, Any],
    *,
    once: bool = False,
) -> None:
    """Run one worker until SIGTERM/SIGINT (graceful), or a second signal (at once); with
    ``once``, also until no job is due and the claimed ones are done (graphile-worker's
    ``--once``: from cron, CI or a batch script)."""
    q = await connect()
    counts: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    async with q:
        count = [lambda e: counts.update((e.type,))] if once else []  # for the summary
        w = Worker(q, tasks, concurrency=concurrency, hooks=count, **settings)
        loop = asyncio.get_running_loop()
        run_task = asyncio.ensure_future(w.run(until_empty=once))
        signals = 0
        stopping: set[asyncio.Task[None]] = set()  # keep a reference until done

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                logging.getLogger("aioqueue.worker").warning(
                    "received %s: stopping gracefully (again to stop at once)",
                    signal.Signals(signum).name,
                )
                stopping.add(loop.create_task(w.stop()))
            else:
                run_task.cancel()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await run_task
        except asyncio.CancelledError:
            if signals < 2:
                raise
    if once:
        print(once_summary(counts, time.monotonic() - started), flush=True)


_SUMMARY = ("completed", "failed", "retried", "snoozed", "cancelled", "released")


def once_summary(counts: collections.Counter[str], seconds: float) -> str:
    """``--once``'s last line: what the run did (outcomes of attempts) and how long it took."""
    finished = sum(counts[k] for k in _SUMMARY)
    parts = [f"{counts[k]} {k}" for k in _SUMMARY if counts[k]]
    detail = f": {', '.join(parts)}" if parts else ""
    return f"ran {finished} job attempts in {seconds:.1f} s{detail}"


def supervise(processes: int) -> int:
    """Start N copies of this command with --processes 1; forward signals; exit with the worst."""
    child_args: list[str] = []
    skip = False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--processes":
            skip = True
            continue
        if a.startswith("--processes="):
            continue
        child_args.append(a)
    children = [
        subprocess.Popen([sys.executable, "-m", "aioqueue", *child_args]) for _ in range(processes)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max((abs(c) for c in codes), default=0)
