"""What a LISTEN connection hears: ``Listener`` collects the payloads of one channel."""

from __future__ import annotations

import asyncio

import anyio
import asyncpg


class Listener:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.payloads: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self._changed.set()

    async def drain(self, sender: asyncpg.Connection) -> list[str]:
        """Notifications received so far, after a probe proved every earlier one arrived."""
        await sender.execute("SELECT pg_notify($1, 'probe')", self.channel)
        with anyio.fail_after(5):
            while "probe" not in self.payloads:
                self._changed.clear()
                await self._changed.wait()
        got = self.payloads[: self.payloads.index("probe")]
        self.payloads.clear()
        return got
