"""Runner convention for benchmarks.

Every benchmark is a script, ``python benchmarks/NAME.py``, that measures mindwell and its
baseline in the same run, prints a Markdown table, and replaces its own section of
``docs/benchmarks.md`` (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``), so the
file always holds the latest run of each benchmark and nothing else changes.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh.\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_section(name: str, title: str, body: str, command: str) -> str:
    """Replace the benchmark's section in docs/benchmarks.md and return the section."""
    stamp = time.strftime("%Y-%m-%d")
    section = (
        f"<!-- {name}:start -->\n## {title}\n\n"
        f"Command: `{command}`  \nMachine: {machine()}  \nRun: {stamp}, commit {git_revision()}"
        f"\n\n{body.strip()}\n<!-- {name}:end -->"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    marker = re.escape(name)
    pattern = re.compile(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + section + "\n"
    )
    DOC.write_text(text)
    return section


def decode_speed(backend, conversations: list[list[dict]]) -> tuple[float, float]:
    """(median decode tokens/s, median time to first token in ms) of a llama.cpp backend,
    greedy 128-token replies, one per conversation."""
    from mindwell.inference import SamplingParams

    rates, first = [], []
    params = SamplingParams(max_tokens=128, temperature=0.0, seed=1)
    for messages in conversations:
        prompt = backend.render(messages)
        started = time.perf_counter()
        pieces = backend.stream_prompt(prompt, params)
        next(pieces)
        first.append(1000 * (time.perf_counter() - started))
        for _ in pieces:
            pass
        rates.append(backend.last_stats.extra.get("timings", {}).get("predicted_per_second", 0.0))
    return median(rates), median(first)
