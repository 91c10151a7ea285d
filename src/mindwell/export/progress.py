"""Progress of the long export steps: a spinner on a terminal, plain lines otherwise.

An export takes minutes (conversion, quantization, several model loads for verification).
On a terminal a spinner shows the step; when stdout is a file or a pipe (CI, `nohup`,
`| tee`) each step prints a start line and a done line with its time, flushed at once, so
the log shows where the export is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

_console = Console(stderr=True)


def interactive() -> bool:
    return sys.stdout.isatty()


@contextmanager
def step(what: str) -> Iterator[None]:
    """Show ``what`` while the block runs."""
    if interactive():
        with _console.status(f"{what}..."):
            yield
        return
    started = time.monotonic()
    print(f"[export] {what}...", flush=True)
    try:
        yield
    except BaseException:
        print(f"[export] {what}: failed after {time.monotonic() - started:.0f} s", flush=True)
        raise
    print(f"[export] {what}: done in {time.monotonic() - started:.0f} s", flush=True)
