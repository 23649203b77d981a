"""S2 for CLI arguments: hostile kinds, payloads, keys and filters through the real CLI (click's
runner, in-process) end with exit 0 and the value stored byte for byte, or one clear error line;
never a traceback, never an interpreted value."""

from __future__ import annotations

import json
import secrets

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioqueue.cli import cli

TEXT = st.one_of(
    st.text(min_size=1, max_size=60).filter(lambda s: not s.startswith("-")),
    st.sampled_from(["'; DROP TABLE canary; --", '"x"', "$$", "\\", "\u202e", "a b", "%s"]),
)


@pytest.fixture(scope="module")
def base(dsn: str) -> list[str]:
    schema = f"clifuzz_{secrets.token_hex(3)}"
    args = ["--dsn", dsn, "--schema", schema]
    result = CliRunner().invoke(cli, [*args, "migrate"])
    assert result.exit_code == 0, result.output
    return args


FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _one_clean_error(output: str) -> None:
    lines = [line for line in output.strip().splitlines() if line]
    assert "Traceback" not in output
    assert lines and (lines[-1].startswith("aioqueue: error:") or lines[-1].startswith("Error:"))


@FUZZ
@given(kind=TEXT, key=TEXT, value=TEXT)
def test_enqueue_and_list_through_the_cli(base: list[str], kind: str, key: str, value: str) -> None:
    runner = CliRunner()
    payload = json.dumps({"v": value})
    result = runner.invoke(cli, [*base, "enqueue", kind, payload, "--unique-key", key, "--json"])
    if result.exit_code != 0:
        _one_clean_error(result.output)
        return
    out = json.loads(result.output)
    job_id = out["id"]
    shown = runner.invoke(cli, [*base, "jobs", "show", str(job_id), "--payload", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert (data["kind"], data["unique_key"]) == (kind, key)
    if not out["deduped"]:  # a duplicate (kind, key) returns the earlier job, as designed
        assert data["payload"] == {"v": value}
    listed = runner.invoke(cli, [*base, "jobs", "list", "--kind", kind, "--json"])
    assert listed.exit_code == 0, listed.output
    assert job_id in [row["id"] for row in json.loads(listed.output)]
