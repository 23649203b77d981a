"""``aioqueue status`` and ``aioqueue jobs list|show|retry|cancel``: looking at jobs and acting on
them from the command line. Registered by cli.py (``register``); what they print is _cli_admin's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click

from .queue import Queue
from .types import JobState

# cli.py's helpers, handed over by ``register`` (this module sits below cli.py)
Connect = Callable[..., Awaitable[Queue]]  # connect(opts, *, migrate=True, monitor=False)
Run = Callable[[Callable[[], Awaitable[Any]]], Any]
UsageFail = Callable[[str], NoReturn]  # one line on stderr, exit code 2


def register(
    cli: click.Group,
    pass_options: Callable[[Any], Any],
    connect: Connect,
    run: Run,
    usage_fail: UsageFail,
) -> None:
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_options
    def status(opts: Any, as_json: bool) -> None:
        """Counts per kind and state, oldest due job, throughput, and database health warnings."""
        from rich.console import Console

        from ._cli_admin import print_status

        async def main() -> None:
            async with await connect(opts, migrate=False, monitor=True) as q:
                await print_status(Console(), q, as_json=as_json)

        run(main)

    @cli.group()
    def jobs() -> None:
        """List, show, retry and cancel jobs."""

    _read_commands(jobs, pass_options, connect, run)
    _change_commands(jobs, pass_options, connect, run, usage_fail)


def _read_commands(
    jobs: click.Group, pass_options: Callable[[Any], Any], connect: Connect, run: Run
) -> None:
    @jobs.command("list")
    @click.option("--kind")
    @click.option("--state", type=click.Choice([s.value for s in JobState]))
    @click.option("--queue-name")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
    @click.option("--after", type=int, help="Keyset cursor: the last id of the previous page.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_options
    def jobs_list(
        opts: Any,
        kind: str | None,
        state: str | None,
        queue_name: str | None,
        limit: int,
        after: int | None,
        as_json: bool,
    ) -> None:
        """Jobs, newest first."""
        from rich.console import Console

        from ._cli_admin import print_jobs

        async def main() -> None:
            async with await connect(opts, migrate=False, monitor=True) as q:
                found = await q.list_jobs(
                    kind=kind, state=state, queue_name=queue_name, limit=limit, after=after
                )
                print_jobs(Console(), found, as_json=as_json, limit=limit)

        run(main)

    @jobs.command("show")
    @click.argument("job_id", type=int)
    @click.option("--payload", is_flag=True, help="Also show payload, result and traceback.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_options
    def jobs_show(opts: Any, job_id: int, payload: bool, as_json: bool) -> None:
        """One job: state, attempts, error, lineage (payload only with --payload)."""
        from rich.console import Console

        from ._cli_admin import print_job

        async def main() -> None:
            async with await connect(opts, migrate=False) as q:
                print_job(Console(), await q.get_job(job_id), payload=payload, as_json=as_json)

        run(main)


def _change_commands(
    jobs: click.Group,
    pass_options: Callable[[Any], Any],
    connect: Connect,
    run: Run,
    usage_fail: UsageFail,
) -> None:
    @jobs.command("retry")
    @click.argument("job_id", type=int, required=False)
    @click.option("--all-failed", is_flag=True, help="Retry every failed job (see --kind).")
    @click.option("--kind", help="With --all-failed: only this kind.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_options
    def jobs_retry(
        opts: Any, job_id: int | None, all_failed: bool, kind: str | None, as_json: bool
    ) -> None:
        """Re-run a failed or cancelled job as a new job (lineage: rescheduled_from)."""
        from rich.console import Console

        from ._cli_admin import retry_failed

        if (job_id is None) == (not all_failed):
            usage_fail("give a JOB_ID or --all-failed (not both)")

        async def main() -> None:
            async with await connect(opts, migrate=False) as q:
                if all_failed:
                    count = await retry_failed(Console(stderr=True), q, kind=kind)
                    click.echo(
                        json.dumps({"retried": count}) if as_json else f"retried {count} jobs"
                    )
                    return
                assert job_id is not None
                out = await q.retry(job_id)
                if as_json:
                    click.echo(
                        json.dumps(
                            {"id": out.id, "deduped": out.deduped, "rescheduled_from": job_id}
                        )
                    )
                else:
                    click.echo(
                        f"job {job_id} re-enqueued as job {out.id}"
                        + (" (an active job with its key already existed)" if out.deduped else "")
                    )

        run(main)

    @jobs.command("cancel")
    @click.argument("job_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @pass_options
    def jobs_cancel(opts: Any, job_id: int, as_json: bool) -> None:
        """Cancel a job (a running job is asked to stop by its worker)."""

        async def main() -> None:
            async with await connect(opts, migrate=False) as q:
                job = await q.cancel(job_id)
                if as_json:
                    click.echo(json.dumps({"id": job.id, "state": job.state.value}))
                elif job.state is JobState.RUNNING:
                    click.echo(f"job {job_id} is running: its worker was asked to stop it")
                else:
                    click.echo(f"job {job_id} cancelled")

        run(main)
