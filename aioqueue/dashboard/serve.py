"""``aioqueue dashboard``: the app served by uvicorn on one Queue connection pool."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from ..queue import Queue
from .app import create_app

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGINT/SIGTERM after shutting down, so a clean Ctrl-C would
    end as 'Aborted!' with status 1; here a signal just means: stop serving."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def serve(
    dsn: str | None,
    *,
    schema: str,
    data_dir: Path | None,
    host: str,
    port: int,
    allow_actions: bool,
    announce: bool = True,
    read_dsn: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Fails at once if the schema is missing or outdated."""
    async with await Queue.connect(
        dsn, schema=schema, migrate=False, data_dir=data_dir, read_dsn=read_dsn
    ) as q:
        app = create_app(q, allow_actions=allow_actions)
        server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        # bound before anything is printed: a taken port fails with one error, no success line
        sock = socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
        port = sock.getsockname()[1]
        if announce:
            mode = "retry/cancel enabled" if allow_actions else "read-only"
            print(f"aioqueue dashboard on http://{host}:{port}/ ({mode}); Ctrl-C stops it")
            if host not in LOOPBACK:
                print(
                    f"warning: listening on {host}: anyone who can reach this port sees job "
                    "payloads; put it behind your own authentication"
                )
        await server.serve(sockets=[sock])
