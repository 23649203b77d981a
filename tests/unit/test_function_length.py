"""No function in the consumer (aioqueue/_consumer and worker.py) is over 60 lines: one that
grows past that is doing a second job, which belongs in a function (or a service) of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import aioqueue

LIMIT = 60
PACKAGE = Path(aioqueue.__file__).parent


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > LIMIT:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {length}")
    return found


def test_no_function_in_the_consumer_is_over_60_lines() -> None:
    files = [*sorted((PACKAGE / "_consumer").glob("*.py")), PACKAGE / "worker.py"]
    assert len(files) > 5
    too_long = [line for path in files for line in _long_functions(path)]
    assert not too_long, too_long
