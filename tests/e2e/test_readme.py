"""Every ```python block of README.md runs, as a user would run it, against the test database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

import aioqueue

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SQL_BLOCKS = re.findall(r"```sql\n(.*?)```", README, flags=re.S)
SHELL_BLOCKS = re.findall(r"```shell\n(.*?)```", README, flags=re.S)


_DROPPED: set[str] = set()


async def _fresh_schema(dsn: str) -> None:
    """The default schema is dropped once per test database, before the first snippet: each
    later snippet runs on what the ones before it left, as a reader's would, so its printed
    output must not depend on an empty schema."""
    if dsn in _DROPPED:
        return
    _DROPPED.add(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS aioqueue CASCADE")
    finally:
        await conn.close()


def test_readme_has_snippets() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_snippet_runs(code: str, dsn: str, tmp_path: Path) -> None:
    asyncio.run(_fresh_schema(dsn))
    script = tmp_path / "snippet.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "AIOQUEUE_DSN": dsn},
    )
    assert proc.returncode == 0, proc.stderr
    expected = [m.strip() for m in re.findall(r"print\(.*\)[ \t]+# (.*)", code)]
    printed = proc.stdout.strip().splitlines()
    for want, got in zip(expected, printed, strict=False):
        prefix = re.split(r"…|: ", want)[0].strip()  # "value: explanation" checks the value
        assert got.startswith(prefix), (want, got)


@pytest.mark.parametrize("code", SQL_BLOCKS, ids=[f"sql{i}" for i in range(len(SQL_BLOCKS))])
def test_readme_sql_runs(code: str, dsn: str) -> None:
    async def run() -> None:
        await _fresh_schema(dsn)
        async with await aioqueue.Queue.connect(dsn):  # installs the default schema
            pass
        conn = await asyncpg.connect(dsn)
        try:
            for statement in filter(None, (s.strip() for s in code.split(";\n"))):
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.mark.parametrize("code", SHELL_BLOCKS, ids=[f"shell{i}" for i in range(len(SHELL_BLOCKS))])
def test_readme_commands_run(code: str, dsn: str, tmp_path: Path) -> None:
    asyncio.run(_fresh_schema(dsn))
    bin_dir = Path(sys.executable).parent
    for line in filter(None, (x.split("  #")[0].strip() for x in code.splitlines())):
        proc = subprocess.run(
            ["bash", "-c", line],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "AIOQUEUE_DSN": dsn, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        )
        assert proc.returncode == 0, (line, proc.stderr)
