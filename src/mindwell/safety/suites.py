"""Reading the JSONL test suites (red-team and jailbreak) with clear messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mindwell.errors import MindwellError


def read_jsonl(path: Path, kind: str, problem: Callable[[dict], str | None]) -> list[dict]:
    """The rows of a suite; ``problem(row)`` names what is wrong with a row, or None."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise MindwellError(f"Cannot read the {kind} {path}: {err}.") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MindwellError(f"{path}, line {number}: not valid JSON ({err.msg}).") from err
        wrong = problem(row) if isinstance(row, dict) else "a JSON object"
        if wrong:
            raise MindwellError(f"{path}, line {number}: {wrong}")
        rows.append(row)
    if not rows:
        raise MindwellError(f"The {kind} {path} has no lines.")
    return rows
