"""A primary and a streaming standby of Debian's PostgreSQL 15, started by the test itself on
free loopback ports in a temporary folder (as the ``postgres`` system user when run as root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import asyncpg

from tests.conftest import skip_unless_required

PG15 = Path("/usr/lib/postgresql/15/bin")
USER = "aioqueue"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One server of the cluster: its data folder and port."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.data = cluster.root / name
        self.port = free_port()

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self, *settings: str) -> None:
        options = [f"-p {self.port}", f"-k {self.cluster.root}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {s}" for s in settings]
        self.cluster.pg(
            "pg_ctl", "-D", str(self.data), "-l", f"{self.data}.log", "-w", "-t", "60",
            "-o", " ".join(options), "start",
        )  # fmt: skip

    def kill(self) -> None:
        """The crash of the server: no checkpoint, no goodbye to clients or the standby."""
        self.cluster.pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def promote(self) -> None:
        self.cluster.pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def log(self) -> str:
        path = Path(f"{self.data}.log")
        return path.read_text(errors="replace") if path.exists() else ""


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[Node] = []

    def pg(self, tool: str, *args: str) -> str:
        command = [str(PG15 / tool), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def primary(self, *settings: str) -> Node:
        node = Node(self, f"node{len(self.nodes) + 1}")
        self.pg("initdb", "-D", str(node.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        node.start(*settings)
        self.nodes.append(node)
        return node

    def standby_of(self, upstream: Node, *, port: int | None = None) -> Node:
        """A streaming standby cloned from ``upstream`` (``pg_basebackup -R``)."""
        node = Node(self, f"node{len(self.nodes) + 1}")
        if port is not None:
            node.port = port
        self.pg(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(upstream.port), "-U", USER,
            "-D", str(node.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        node.start()
        self.nodes.append(node)
        return node

    def stop_all(self) -> None:
        for node in self.nodes:
            if (node.data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    node.kill()


@contextmanager
def cluster() -> Iterator[Cluster]:
    if not (PG15 / "postgres").exists():
        skip_unless_required(
            "postgresql-15", f"PostgreSQL 15 not found at {PG15} (apt-get install postgresql-15)"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        skip_unless_required("postgresql-15", "running as root without runuser")
    root = Path(tempfile.mkdtemp(prefix="aioqueue-failover-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    made = Cluster(root)
    try:
        yield made
    finally:
        made.stop_all()
        shutil.rmtree(root, ignore_errors=True)


async def wait_streaming(primary_dsn: str, *, sync: bool, timeout: float = 30) -> None:
    """Until the primary has a standby streaming (and, with ``sync``, synchronous): polls the
    primary's own view, as nothing else signals it."""
    conn = await asyncpg.connect(primary_dsn)
    try:
        with anyio.fail_after(timeout):
            while True:
                states = await conn.fetch("SELECT state, sync_state FROM pg_stat_replication")
                if any(
                    r["state"] == "streaming" and (not sync or r["sync_state"] == "sync")
                    for r in states
                ):
                    return
                await anyio.sleep(0.05)
    finally:
        await conn.close()
