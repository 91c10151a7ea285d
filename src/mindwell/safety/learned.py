"""The learned layer of the safety gate: an RBF support-vector machine on sentence embeddings.

Rules catch the phrasings someone wrote down; this layer catches the ones nobody did
("gave my guitar away, wont need it where im going"). It scores the embedded Universal
Sentence Encoder vector of a message (and of the person's last few messages together)
against the support vectors of a classifier trained on crisis and look-alike messages, so
it runs on every message in a few milliseconds with numpy alone and carries from English
and Korean training data to other languages.

The shipped head (``crisis_head.npz``) is trained with the project's own pipeline:

    mindwell train configs/crisis-risk.yaml
    python scripts/ship_crisis_head.py runs/crisis-risk

and its thresholds are chosen on the recipe's validation split (see docs/safety.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

HEAD_PATH = Path(__file__).with_name("crisis_head.npz")


@dataclass(frozen=True)
class CrisisHead:
    support_vectors: np.ndarray  # (n, dim) embeddings of training messages
    dual_coef: np.ndarray  # (n,) signed weight of each; positive pulls towards crisis
    intercept: float
    gamma: float  # RBF width
    threshold: float  # decision value at which a message escalates on its own
    medium_threshold: float  # decision value that counts as a medium sign (accumulates)

    @classmethod
    def _read(cls, path: Path, threshold: float | None = None,
              medium_threshold: float | None = None) -> CrisisHead:
        """Thresholds given here, else the ones saved in the file."""
        with np.load(path) as saved:
            return cls(saved["support_vectors"].astype(np.float32),
                       saved["dual_coef"].astype(np.float32), float(saved["intercept"]),
                       float(saved["gamma"]),
                       float(saved["threshold"]) if threshold is None else threshold,
                       float(saved["medium_threshold"]) if medium_threshold is None
                       else medium_threshold)

    @classmethod
    def from_run(cls, path: Path, threshold: float = 0.0,
                 medium_threshold: float = 0.0) -> CrisisHead:
        """From a run's ``adapter/svm.npz`` (``classifier: embedding-svm``)."""
        return cls._read(path, threshold, medium_threshold)

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> CrisisHead:
        try:
            return cls._read(path)
        except (OSError, KeyError, ValueError) as err:
            raise MindwellError(
                f"Cannot load the crisis head {path}: {err}.",
                "Reinstall mindwell, or rebuild it with scripts/ship_crisis_head.py.",
            ) from err

    def __post_init__(self) -> None:
        # Computed once: per-message scoring is then one small matrix product.
        object.__setattr__(self, "_support_norms", (self.support_vectors**2).sum(1))

    def scores_for_vectors(self, vectors: np.ndarray) -> np.ndarray:
        squared = ((vectors**2).sum(1)[:, None] + self._support_norms[None, :]
                   - 2.0 * vectors @ self.support_vectors.T)
        return np.exp(-self.gamma * np.maximum(squared, 0.0)) @ self.dual_coef + self.intercept

    def scores(self, texts: list[str]) -> np.ndarray:
        """Decision value per text (> threshold: crisis), one embedder call for all."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        from mindwell.models.embedder import get_embedder

        return self.scores_for_vectors(get_embedder().encode(texts))

    def save(self, path: Path) -> None:
        # float16 halves the file; decision values move by < 1e-3.
        np.savez_compressed(
            path, support_vectors=self.support_vectors.astype(np.float16),
            dual_coef=self.dual_coef.astype(np.float32), intercept=np.float32(self.intercept),
            gamma=np.float32(self.gamma), threshold=np.float32(self.threshold),
            medium_threshold=np.float32(self.medium_threshold))


@cache
def shipped_head() -> CrisisHead:
    return CrisisHead.load()
