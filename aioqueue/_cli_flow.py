"""``aioqueue limits …``, ``aioqueue pause`` and ``aioqueue resume``: flow control (issue 20)
from the command line. Registered by cli.py (``register``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.markup import escape

from ._flow import UNSET, describe
from .queue import Queue


def _limit(text: str | None) -> Any:
    """A CLI limit: absent keeps it, 'none' clears it, else an integer."""
    if text is None:
        return UNSET
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an integer or 'none'") from None


def _rate(text: str | None) -> Any:
    """'N/SECONDS' (e.g. 100/60), 'none', or absent."""
    if text is None:
        return UNSET
    if text.lower() == "none":
        return None
    n, sep, per = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return (int(n), float(per))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give STARTS/SECONDS, e.g. 100/60, or 'none'") from None


def register(
    cli: click.Group,
    pass_options: Callable[[Any], Any],
    connect: Callable[[Any], Awaitable[Queue]],
    run: Callable[[Callable[[], Awaitable[Any]]], Any],
) -> None:
    @cli.group()
    def limits() -> None:
        """Global limits per kind: concurrency and rate, per kind and per key (all workers)."""

    @limits.command("show")
    @click.option("--json", "as_json", is_flag=True)
    @pass_options
    def limits_show(opts: Any, as_json: bool) -> None:
        """Each kind's limits, running jobs (per kind, busiest key) and jobs held back."""

        async def main() -> None:
            async with await connect(opts) as q:
                flow = await q.limits()
                console = Console()
                if as_json:
                    console.print_json(msgspec.json.encode(flow).decode())
                    return
                for line in describe(flow) or ["no flow settings"]:
                    console.print(escape(line))

        run(main)

    @limits.command("set")
    @click.argument("kind")
    @click.option("--concurrency", help="Running at once, all workers ('none': no limit).")
    @click.option("--key-concurrency", help="Running at once per concurrency_key ('none').")
    @click.option("--rate", help="STARTS/SECONDS, e.g. 100/60 ('none': no rate limit).")
    @click.option("--key-rate", help="STARTS/SECONDS per concurrency_key ('none').")
    @pass_options
    def limits_set(
        opts: Any,
        kind: str,
        concurrency: str | None,
        key_concurrency: str | None,
        rate: str | None,
        key_rate: str | None,
    ) -> None:
        """Change KIND's limits now; running workers pick them up at their next claim."""
        values = (_limit(concurrency), _limit(key_concurrency), _rate(rate), _rate(key_rate))

        async def main() -> None:
            async with await connect(opts) as q:
                await q.set_limits(
                    kind,
                    concurrency=values[0],
                    key_concurrency=values[1],
                    rate_limit=values[2],
                    key_rate_limit=values[3],
                )
                click.echo(f"limits of {kind} set")

        run(main)

    @limits.command("reset")
    @click.argument("kind")
    @pass_options
    def limits_reset(opts: Any, kind: str) -> None:
        """Forget KIND's settings (workers started later declare their tasks' limits again)."""

        async def main() -> None:
            async with await connect(opts) as q:
                found = await q.reset_limits(kind)
                click.echo(f"limits of {kind} {'reset' if found else 'were not set'}")

        run(main)

    for paused in (True, False):
        _pause_command(cli, pass_options, connect, run, paused=paused)


def _pause_command(
    cli: click.Group,
    pass_options: Callable[[Any], Any],
    connect: Callable[[Any], Awaitable[Queue]],
    run: Callable[[Callable[[], Awaitable[Any]]], Any],
    *,
    paused: bool,
) -> None:
    verb = "pause" if paused else "resume"

    @cli.command(
        verb,
        help=(
            "Stop claiming KIND (or --queue-name) on every worker; running jobs finish."
            if paused
            else "Claim KIND (or --queue-name) again."
        ),
    )
    @click.argument("kind", required=False)
    @click.option("--queue-name", help="A named queue instead of a kind.")
    @pass_options
    def command(opts: Any, kind: str | None, queue_name: str | None) -> None:
        if (kind is None) == (queue_name is None):
            raise click.UsageError("give a KIND or --queue-name, not both")

        async def main() -> None:
            async with await connect(opts) as q:
                if paused:
                    await q.pause(kind, queue_name=queue_name)
                else:
                    await q.resume(kind, queue_name=queue_name)
                click.echo(f"{verb}d {kind if kind is not None else f'queue {queue_name}'}")

        run(main)
