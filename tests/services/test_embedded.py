"""The zero-config server: several processes starting it at once get one server; `aioqueue db
url` / `db stop` manage it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(bool(os.environ.get("AIOQUEUE_TEST_DSN")), reason="uses the embedded server")
def test_concurrent_starts_share_one_server_and_db_stop(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    env = {k: v for k, v in os.environ.items() if k not in ("AIOQUEUE_DSN", "DATABASE_URL")}
    cmd = [sys.executable, "-m", "aioqueue", "--data-dir", str(data), "db", "url"]
    procs = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        for _ in range(3)
    ]
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        urls = {out.strip() for out, _ in outputs}
        assert len(urls) == 1  # one server, the later processes connected to it
        assert next(iter(urls)).startswith("postgresql://postgres@")
        check = subprocess.run(
            [
                sys.executable,
                "-c",
                "import asyncio, asyncpg, sys; "
                "print(asyncio.run(asyncpg.connect(sys.argv[1])).__class__.__name__)",
                next(iter(urls)),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "aioqueue", "--data-dir", str(data), "db", "stop"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )
    assert stop.stdout.strip() == "stopped"
    again = subprocess.run(
        [sys.executable, "-m", "aioqueue", "--data-dir", str(data), "db", "stop"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert again.stdout.strip() == "not running"
