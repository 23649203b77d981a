"""Rules of the package's shape (issue 19): one way to reach SQL, SQL only in ``_db/``, one
definition of the wake-up NOTIFY and of the constants SQL shares with Python, and a public API
that changes only on purpose."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import aioqueue
from aioqueue import config
from aioqueue._db import queries
from aioqueue._db.queries import MIGRATIONS_DIR, SQL_DIR, Queries

PACKAGE = Path(aioqueue.__file__).parent
QUERIES_DIR = Path(queries.__file__).parent

# Text that is SQL, not prose that names a keyword ("no SELECT on flow_limits" is a message).
SQL_TEXT = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX|FUNCTION|SCHEMA|TRIGGER)\b|\bpg_notify\s*\("
    r"|\bset_config\s*\(",
    re.IGNORECASE,
)

# The public API: change it on purpose, here and in the README.
PUBLIC_API = [
    "AioqueueError",
    "Cancel",
    "ConfigurationError",
    "DatabaseUnavailable",
    "EnqueueResult",
    "Event",
    "Fail",
    "FlowStatus",
    "Group",
    "GroupNotFound",
    "GroupOutcome",
    "HandlerOutcome",
    "Hooks",
    "InvalidJobError",
    "Job",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobLink",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStateError",
    "KindFlow",
    "OnConflict",
    "OnParentFailure",
    "PayloadEncodeError",
    "PayloadError",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PayloadValueError",
    "Queue",
    "QueueFull",
    "Ref",
    "SchemaError",
    "SchemaNotInstalled",
    "SchemaOutdated",
    "Snooze",
    "Task",
    "TaskHandle",
    "Tasks",
    "UnknownTaskError",
    "WaitTimeout",
    "Worker",
    "WorkerConfig",
    "__version__",
]


def _statements() -> set[str]:
    return {p.stem for p in SQL_DIR.glob("*.sql")}


def _wrappers() -> dict[str, object]:
    """The statement methods of Queries: every public method but ``text`` (EXPLAIN only)."""
    return {
        name: member
        for name, member in inspect.getmembers(Queries)
        if not name.startswith("_") and callable(member) and name != "text"
    }


def test_every_statement_has_one_wrapper_and_every_wrapper_its_statement() -> None:
    statements, wrappers = _statements(), _wrappers()
    assert sorted(statements - set(wrappers)) == [], "statements without a wrapper"
    assert sorted(set(wrappers) - statements) == [], "wrappers without a statement"
    for name, method in wrappers.items():
        source = inspect.getsource(method)  # type: ignore[arg-type]
        assert f'["{name}"]' in source, f"{name}() does not run {name}.sql"
        signature = inspect.signature(method)  # type: ignore[arg-type]
        params = list(signature.parameters.values())
        if params and params[0].name == "self":
            params = params[1:]
        assert params[0].name == "db", name
        positional = [p.name for p in params[1:] if p.kind is not p.KEYWORD_ONLY]
        assert positional == [], f"{name}(): keyword-only arguments after db, got {positional}"
        assert signature.return_annotation is not inspect.Signature.empty, name


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _string_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal but docstrings; an f-string as its literal parts joined."""
    docs = _docstrings(tree)
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
            out.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and id(node) not in inside_fstrings
        ):
            out.append((node.lineno, node.value))
    return out


def test_no_sql_text_outside_db() -> None:
    found = []
    for path in _python_files():
        if path.is_relative_to(PACKAGE / "_db"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, text in _string_literals(tree):
            if SQL_TEXT.search(text):
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {text[:60]!r}")
    assert found == []


def test_the_scan_finds_sql_and_ignores_prose() -> None:
    tree = ast.parse(
        'x = "no SELECT on flow_limits"\n'
        'y = f"SELECT id FROM {s}.jobs"\n'
        "z = 'update the docs'\n"
        'def f():\n    """SELECT id FROM jobs, as the docs say."""\n'
    )
    hits = [line for line, text in _string_literals(tree) if SQL_TEXT.search(text)]
    assert hits == [2]


def test_statements_are_run_only_through_their_wrappers() -> None:
    """No lookup of statement text by name outside _db/queries/ (``.sql[...]``,
    ``_sql[...]``, ``statement_texts()``, ``.text(...)``, ``fetch("name", ...)``)."""
    lookup = re.compile(r"\b_?sql\[|statement_texts\(|queries\.text\(|\.fetch\(\s*\w+,\s*[\"']")
    found = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in _python_files()
        if not path.is_relative_to(QUERIES_DIR)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if lookup.search(line)
    ]
    assert found == []


def test_pg_notify_is_called_by_notify_workers_only() -> None:
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text()
        assert "pg_notify" not in text, path.name
        assert "pg_notification_queue_usage() <=" not in text, path.name
    defining = [
        p.name
        for p in MIGRATIONS_DIR.glob("*.sql")
        if "FUNCTION /*schema*/.notify_workers" in p.read_text()
    ]
    assert defining == ["0012_notify_once.sql"]


def test_constants_shared_with_sql_are_the_same() -> None:
    text = (MIGRATIONS_DIR / "0012_notify_once.sql").read_text()
    limit = re.search(r"pg_notification_queue_usage\(\) > ([0-9.]+) THEN", text)
    assert limit is not None and float(limit[1]) == config.NOTIFY_QUEUE_LIMIT
    delay = re.search(r"SELECT (\d+)::bigint", text)
    assert delay is not None and int(delay[1]) == config.MAX_DELAY_SECONDS
    for path in SQL_DIR.glob("*.sql"):
        body = "\n".join(x for x in path.read_text().splitlines() if not x.startswith("--"))
        assert str(config.MAX_DELAY_SECONDS) not in body, path.name
        assert not re.search(rf"\b{config.DEFAULT_MAX_ATTEMPTS}\)", body), path.name


def test_public_api_matches_the_snapshot() -> None:
    assert sorted(aioqueue.__all__) == PUBLIC_API
    for name in aioqueue.__all__:
        assert hasattr(aioqueue, name), name
