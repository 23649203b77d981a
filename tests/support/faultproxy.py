"""A loopback TCP fault proxy between clients and PostgreSQL (modelled on asyncpg's
TCPFuzzingProxy): ``pass`` forwards, ``blackhole`` stops forwarding but keeps sockets open,
``refuse`` closes new connections at once (a server that is down), ``reset()`` closes every
connection, ``cut_after(pattern)`` forwards the next client message that contains ``pattern``
and then cuts that connection before the server's reply gets back. ``tcp_target(dsn)``: where
the server under test listens on TCP (the chaos tests' ``proxy`` fixture forwards there)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator
from typing import Literal

Mode = Literal["pass", "blackhole", "refuse"]


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, user: str = "postgres") -> None:
        self.target = (target_host, target_port)
        self.user = user  # the role the server under test knows (AIOQUEUE_TEST_DSN's)
        self.mode: Mode = "pass"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._cut_pattern: bytes | None = None
        self.cuts = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "pass":
            self._flowing.set()
        else:
            self._flowing.clear()

    def retarget(self, host: str, port: int) -> None:
        """New connections go to ``host:port``; open ones stay where they are (a DNS name
        switched to another server)."""
        self.target = (host, port)

    def reset(self) -> None:
        """Close every proxied connection at once (clients see a connection reset)."""
        for client, server in list(self._links):
            for w in (client, server):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._links.clear()

    def cut_after(self, pattern: bytes) -> None:
        self._cut_pattern = pattern

    @property
    def connections(self) -> int:
        return len(self._links)

    async def close(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            c_writer.transport.abort()
            return
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.transport.abort()
            return
        link = (c_writer, s_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(c_reader, s_writer, link, from_client=True),
                self._pump(s_reader, c_writer, link, from_client=False),
            )
        finally:
            self._links.discard(link)
            for w in link:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        from_client: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await reader.read(65536)
                if not data:  # one side closed: close the other too, as TCP would end
                    for w in link:
                        w.close()
                    break
                await self._flowing.wait()
                if link not in self._links:
                    break
                writer.write(data)
                await writer.drain()
                pattern = self._cut_pattern
                if from_client and pattern is not None and pattern in data:
                    self._cut_pattern = None
                    self.cuts += 1
                    for w in link:
                        w.transport.abort()
                    self._links.discard(link)
                    break


@contextlib.asynccontextmanager
async def fault_proxy(host: str, port: int, user: str = "postgres") -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(host, port, user)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def tcp_target(dsn: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qs(parts.query)
    port = int(query["port"][0]) if "port" in query else (parts.port or 5432)
    host = parts.hostname or "127.0.0.1"
    if host.startswith("/") or "host" in query:
        host = "127.0.0.1"  # the embedded server listens on loopback TCP too
    return host, port, parts.path.lstrip("/")
