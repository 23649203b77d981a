"""Issue 17.3: the CLI never prints a traceback, whatever the table holds or the task module
does: deeply nested JSON, rows written through SQL with values no interface produces (a payload
nested 5,000 levels deep, BC and infinite timestamps), task modules that fail to import."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import aq, one_clear_line
from tests.support.worker_helpers import drop_checks

pytestmark = pytest.mark.anyio
DEEP = 5000


def _deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


async def _insert_hostile(dsn: str, schema: str, payload: str = "{}", **columns: str) -> int:
    """One job row written straight through SQL, past any trigger or check constraint the
    schema may grow (the row is what an older version or a hand-written UPDATE left behind)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
            await drop_checks(conn, schema)
            names = ", ".join(["kind", "payload", *columns])
            values = ", ".join(["'hostile'", "$1::jsonb", *columns.values()])
            return int(
                await conn.fetchval(
                    f'INSERT INTO "{schema}".jobs ({names}) VALUES ({values}) RETURNING id',
                    payload,
                )
            )
    finally:
        await conn.close()


def _no_traceback(proc: object, *needles: str) -> None:
    one_clear_line(proc, *needles)  # type: ignore[arg-type]


def test_enqueue_deeply_nested_json_is_one_line(base: list[str]) -> None:
    proc = aq(*base, "enqueue", "deep", _deep_json(DEEP))
    _no_traceback(proc, "nested too deeply")
    assert proc.returncode == 2
    proc = aq(*base, "enqueue", "digits", "9" * 5000)
    _no_traceback(proc, "PAYLOAD")


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"payload": _deep_json(DEEP)}, "nested too deeply"),
        ({"run_at": "'0044-03-15 BC'"}, "out of the range"),
        ({"created_at": "'4713-01-01 BC'"}, "out of the range"),
    ],
    ids=["payload-5000-deep", "run_at-bc", "created_at-bc"],
)
async def test_jobs_list_and_show_on_a_hostile_row_are_one_line(
    base: list[str],
    dsn: str,
    schema: str,
    columns: dict[str, str],
    needle: str,
) -> None:
    job_id = await _insert_hostile(dsn, schema, **columns)
    for args in (["jobs", "show", str(job_id)], ["jobs", "show", str(job_id), "--json"]):
        _no_traceback(aq(*base, *args), needle)
    if "payload" not in columns:  # the list does not read payloads
        for args in (["jobs", "list"], ["jobs", "list", "--json"]):
            _no_traceback(aq(*base, *args), needle)


@pytest.mark.parametrize("when", ["-infinity", "infinity"])
async def test_infinite_run_at_is_shown_not_crashed_on(
    base: list[str],
    dsn: str,
    schema: str,
    when: str,
) -> None:
    job_id = await _insert_hostile(dsn, schema, run_at=f"'{when}'")
    for args in (
        ["jobs", "list"],
        ["jobs", "list", "--json"],
        ["jobs", "show", str(job_id)],
        ["status"],
    ):
        proc = aq(*base, *args)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
    assert when in aq(*base, "jobs", "list").stdout


MODULES = {
    "raises_on_import": (
        'import aioqueue\ntasks = aioqueue.Tasks()\nraise RuntimeError("no config")\n',
        ["RuntimeError: no config", "raises_on_import.py, line 3"],
    ),
    "syntax_error": (
        "import aioqueue\ntasks = aioqueue.Tasks(\nx = = 1\n",
        ["SyntaxError", "syntax_error.py, line 2"],
    ),
    "bad_name": (
        "import aioqueue\nfrom os import no_such_name\n",
        ["ImportError", "no_such_name", "bad_name.py, line 2"],
    ),
    "missing_dep": (
        "import aioqueue\nimport no_such_dependency_17\n",
        ["no_such_dependency_17", "missing_dep.py, line 2"],
    ),
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_task_module_that_fails_to_import_says_file_and_line(
    base: list[str],
    tmp_path: Path,
    module: str,
) -> None:
    source, needles = MODULES[module]
    (tmp_path / f"{module}.py").write_text(source)
    proc = aq(*base, "worker", f"{module}:tasks", env={"PYTHONPATH": str(tmp_path)})
    _no_traceback(proc, *needles)
    assert proc.returncode == 2


def test_missing_task_module_is_still_named(base: list[str]) -> None:
    _no_traceback(aq(*base, "worker", "no_such_module_17:tasks"), "no_such_module_17")
