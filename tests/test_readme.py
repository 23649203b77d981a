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

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


async def _fresh_schema(dsn: str) -> None:
    """Each snippet starts from a fresh default schema."""
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
