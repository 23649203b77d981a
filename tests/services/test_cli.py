"""The CLI as a user runs it: real subprocesses against the test server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import aq, one_clear_line

ROOT = Path(__file__).resolve().parents[2]


def test_enqueue_list_show_cancel_retry(base: list[str]) -> None:
    out = aq(
        *base,
        "enqueue",
        "send.email",
        '{"to": "a@b.com", "secret": "SENTINEL-42"}',
        "--unique-key",
        "welcome:1",
        "--priority",
        "5",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    again = json.loads(
        aq(*base, "enqueue", "send.email", "{}", "--unique-key", "welcome:1", "--json").stdout
    )
    assert again == {"id": first["id"], "deduped": True}

    listed = aq(*base, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [first["id"]]
    assert rows[0]["priority"] == 5
    assert "SENTINEL-42" not in listed.stdout

    shown = aq(*base, "jobs", "show", str(first["id"]))
    assert shown.returncode == 0
    assert "SENTINEL-42" not in shown.stdout  # payload only with --payload
    with_payload = aq(*base, "jobs", "show", str(first["id"]), "--payload", "--json")
    assert json.loads(with_payload.stdout)["payload"]["secret"] == "SENTINEL-42"

    cancelled = aq(*base, "jobs", "cancel", str(first["id"]), "--json")
    assert json.loads(cancelled.stdout) == {"id": first["id"], "state": "cancelled"}
    one_clear_line(aq(*base, "jobs", "cancel", str(first["id"])), "cancelled")

    retried = json.loads(aq(*base, "jobs", "retry", str(first["id"]), "--json").stdout)
    assert retried["rescheduled_from"] == first["id"]
    assert retried["id"] != first["id"]

    status = aq(*base, "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["totals"]["cancelled"] == 1
    assert data["totals"]["pending"] == 1
    assert "SENTINEL-42" not in status.stdout


def test_worker_once_runs_what_is_due_then_exits(base: list[str]) -> None:
    """graphile-worker's --once: each process exits when nothing is due and its claimed jobs
    are done; a job scheduled for later stays for the next run."""
    for i in range(20):
        assert aq(*base, "enqueue", "noop", json.dumps({"i": i})).returncode == 0
    later = json.loads(aq(*base, "enqueue", "noop", "{}", "--delay", "3600", "--json").stdout)

    run = aq(*base, "worker", "tests.support.cli_tasks:tasks", "--once", "--processes", "2")
    assert run.returncode == 0, run.stderr

    data = json.loads(aq(*base, "status", "--json").stdout)
    assert data["totals"]["completed"] == 20
    assert data["totals"]["scheduled"] == 1
    assert data["totals"]["running"] == 0
    shown = json.loads(aq(*base, "jobs", "show", str(later["id"]), "--json").stdout)
    assert shown["state"] == "scheduled"


def test_bad_input_gives_one_clear_line(base: list[str], dsn: str) -> None:
    one_clear_line(aq(*base, "enqueue", "x", "{not json"), "not valid JSON")
    one_clear_line(aq(*base, "enqueue", "k" * 200, "{}"), "kind")
    one_clear_line(aq(*base, "enqueue", "x", '{"a": "nul\\u0000"}'), "NUL")
    one_clear_line(aq(*base, "jobs", "show", "999999999"), "not found")
    one_clear_line(aq("--schema", "public; DROP TABLE x", "status"), "invalid schema name")
    one_clear_line(aq(*base, "worker", "no_such_module:tasks"), "cannot import")
    one_clear_line(aq(*base, "worker", "json:dumps"), "not an aioqueue.Tasks")
    one_clear_line(aq(*base, "jobs", "retry"), "JOB_ID or --all-failed")
    bad = aq("--dsn", "postgresql://u:hunter2@127.0.0.1:1/db", "status", timeout=30)
    one_clear_line(bad, "cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:1/db")
    assert bad.stderr.count("127.0.0.1:1/db") == 1  # the server named once
    assert "hunter2" not in bad.stderr


def test_status_of_missing_schema_says_how_to_fix(dsn: str) -> None:
    one_clear_line(
        aq("--dsn", dsn, "--schema", "never_installed", "status"),
        "aioqueue --schema never_installed migrate",
    )


def test_worker_routing_by_kinds_exclude_and_forbidden_flags(base: list[str]) -> None:
    """A worker takes a subset of a registry's kinds and skips jobs with forbidden flags."""
    for kind, flags in (("mail", []), ("mail", []), ("report", []), ("mail", ["api:stripe"])):
        args = [a for f in flags for a in ("--flag", f)]
        assert aq(*base, "enqueue", kind, "{}", *args).returncode == 0
    spec = "tests.support.routing_tasks:tasks"
    run = aq(*base, "worker", spec, "--once", "--kinds", "mail", "--forbidden-flags", "api:stripe")
    assert run.returncode == 0, run.stderr
    totals = json.loads(aq(*base, "status", "--json").stdout)["totals"]
    assert (totals["completed"], totals["pending"]) == (2, 2)  # report and the flagged mail wait
    run = aq(*base, "worker", spec, "--once", "--exclude", "mail")
    assert run.returncode == 0, run.stderr
    totals = json.loads(aq(*base, "status", "--json").stdout)["totals"]
    assert (totals["completed"], totals["pending"]) == (3, 1)
    one_clear_line(aq(*base, "worker", spec, "--kinds", "mail,nope"), "not registered: 'nope'")
    one_clear_line(aq(*base, "worker", spec, "--exclude", "mail,report"), "no task left")


def test_verbose_anywhere_one_line_per_job_json_logs_and_once_summary(base: list[str]) -> None:
    """-v after the subcommand works; at -v each finished job is one line with id, kind,
    outcome and duration, and no start line is doubled; --log-format json gives one JSON object
    per line; --once ends with a summary."""
    ids = [json.loads(aq(*base, "enqueue", "noop", "{}", "--json").stdout)["id"] for _ in range(3)]
    run = aq(*base, "worker", "tests.support.cli_tasks:tasks", "--once", "-v")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    for job_id in ids:
        [line] = [x for x in lines if f"job {job_id} (noop) completed in " in x]
        assert " ms, attempt 1" in line
    assert sum("started" in x for x in lines) == 1, run.stderr
    assert "ran 3 job attempts in" in run.stdout and "3 completed" in run.stdout
    aq(*base, "enqueue", "noop", "{}")
    run = aq(
        *base, "--log-format", "json", "worker", "tests.support.cli_tasks:tasks", "--once", "-v"
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(x) for x in run.stderr.splitlines()]
    done = [r for r in records if r.get("event") == "completed"]
    assert len(done) == 1 and done[0]["kind"] == "noop" and done[0]["level"] == "INFO"
    assert isinstance(done[0]["duration"], float)


def test_db_list_psql_and_the_missing_schema_hint(dsn: str, tmp_path: Path) -> None:
    """`db psql` runs the wheel's own psql on the DSN; `db list` reads the registry of embedded
    servers; a missing schema names the CLI command and the demo's schema."""
    run = aq("--dsn", dsn, "db", "psql", "-tA", "-c", "SELECT 40 + 2")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"
    state = tmp_path / "state"
    listed = aq("db", "list", env={"XDG_STATE_HOME": str(state)})
    assert listed.returncode == 0 and "no embedded server" in listed.stdout
    registry = state / "aioqueue" / "servers"
    registry.parent.mkdir(parents=True)
    registry.write_text(f"{ROOT / '.aioqueue' / 'pgdata-test'}\n/nowhere/pgdata\n")
    listed = aq("db", "list", env={"XDG_STATE_HOME": str(state)})
    assert "/nowhere" not in listed.stdout
    one_clear_line(
        aq("--dsn", dsn, "--schema", "not_there", "jobs", "list"),
        "aioqueue --schema not_there migrate",
        "aioqueue_demo",
    )
