"""The learned layer of the safety gate: an RBF support-vector machine on sentence embeddings,
stacked with a logistic regression on word and character n-grams.

Rules catch the phrasings someone wrote down; this layer catches the ones nobody did
("gave my guitar away, wont need it where im going"). It scores the embedded Universal
Sentence Encoder vector of a message (and of the person's last few messages together)
against the support vectors of a classifier trained on crisis and look-alike messages, so
it runs on every message in a few milliseconds with numpy alone and carries from English
and Korean training data to other languages. A sentence embedding blurs the few words
that decide many look-alikes ("which bridge is high enough" / "which bridge has the best
view"), and it keys on style (lowercase first-person texting sits near crisis messages
whatever it says); the n-gram model reads those words, and the two scores are combined
with weights learned on out-of-fold scores.

The shipped head (``crisis_head.npz``) is trained with the project's own pipeline:

    mindwell train configs/crisis-risk.yaml
    python scripts/ship_crisis_head.py runs/crisis-risk \
        --dev-suite tests/safety/redteam.jsonl --dev-suite tests/safety/redteam_holdout.jsonl

and its threshold is chosen on the recipe's validation split, then lowered until the two
development suites keep recall 0.99 (see docs/safety.md).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

HEAD_PATH = Path(__file__).with_name("crisis_head.npz")
# Hashed, so nothing but a weight vector ships. The training data has ~390k distinct
# n-grams, so many share a bucket: the model learns on the collided features as they are
# (resolution lost, not correctness); 2**18 keeps the file small. 2**20 is not measured.
NGRAM_BUCKETS = 2**18
_TOKENS = re.compile(r"\w+|[?!.]")


def ngram_features(text: str) -> dict[int, float]:
    """Bucket -> value for word 1-3-grams and in-word character 2-5-grams of the lowercased
    text (character n-grams cover Korean endings and typos). Each of the two groups gets
    sublinear counts and unit length. Training and scoring use this one function."""
    words = _TOKENS.findall(text.lower())
    word_grams = [" ".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)]
    char_grams = [padded[i:i + n] for word in words for padded in (f" {word} ",)
                  for n in (2, 3, 4, 5) for i in range(len(padded) - n + 1)]
    features: dict[int, float] = {}
    for prefix, grams in (("w", word_grams), ("c", char_grams)):
        counts: dict[int, int] = {}
        for gram in grams:
            # crc32, not hash(): Python salts str hashes per process.
            bucket = zlib.crc32(f"{prefix}{gram}".encode()) % NGRAM_BUCKETS
            counts[bucket] = counts.get(bucket, 0) + 1
        values = 1.0 + np.log(np.fromiter(counts.values(), np.float64, len(counts)))
        values /= np.sqrt(values @ values) or 1.0
        for bucket, value in zip(counts, values.tolist(), strict=True):
            features[bucket] = features.get(bucket, 0.0) + value
    return features


def ngram_matrix(texts: list[str]):
    """The n-gram features of many texts as a scipy sparse matrix (training only)."""
    from scipy.sparse import csr_matrix

    rows, columns, values = [], [], []
    for row, text in enumerate(texts):
        for bucket, value in ngram_features(text).items():
            rows.append(row)
            columns.append(bucket)
            values.append(value)
    return csr_matrix((values, (rows, columns)), shape=(len(texts), NGRAM_BUCKETS),
                      dtype=np.float64)


@dataclass(frozen=True)
class CrisisHead:
    support_vectors: np.ndarray  # (n, dim) embeddings of training messages
    dual_coef: np.ndarray  # (n,) signed weight of each; positive pulls towards crisis
    intercept: float
    gamma: float  # RBF width
    threshold: float  # decision value at which a message escalates on its own
    medium_threshold: float  # decision value that counts as a medium sign (accumulates)
    # The n-gram model (absent in a head trained without it): logistic-regression weights
    # per bucket of ``ngram_features``, and the stacking weights that combine the scores:
    # decision = blend[0] * svm + blend[1] * ngram + blend[2].
    ngram_weights: np.ndarray | None = None
    ngram_intercept: float = 0.0
    blend: tuple[float, float, float] = (1.0, 0.0, 0.0)

    @classmethod
    def _read(cls, path: Path, threshold: float | None = None,
              medium_threshold: float | None = None) -> CrisisHead:
        """Thresholds given here, else the ones saved in the file."""
        try:
            saved = np.load(path)
        except (OSError, ValueError) as err:
            raise MindwellError(
                f"Cannot load the crisis head {path}: {err}.",
                "Reinstall mindwell, or rebuild it with scripts/ship_crisis_head.py.",
            ) from err
        with saved:
            words = "ngram_weights" in saved.files
            missing = {"support_vectors", "dual_coef", "intercept", "gamma"} - set(saved.files)
            missing |= ({"threshold", "medium_threshold"} - set(saved.files)
                        if threshold is None else set())
            missing |= {"ngram_intercept", "blend"} - set(saved.files) if words else set()
            if missing:
                raise MindwellError(
                    f"The crisis head {path} lacks {', '.join(sorted(missing))}.",
                    "Rebuild it with `mindwell train` and scripts/ship_crisis_head.py.")
            return cls(saved["support_vectors"].astype(np.float32),
                       saved["dual_coef"].astype(np.float32), float(saved["intercept"]),
                       float(saved["gamma"]),
                       float(saved["threshold"]) if threshold is None else threshold,
                       float(saved["medium_threshold"]) if medium_threshold is None
                       else medium_threshold,
                       saved["ngram_weights"].astype(np.float32) if words else None,
                       float(saved["ngram_intercept"]) if words else 0.0,
                       tuple(float(v) for v in saved["blend"]) if words else (1.0, 0.0, 0.0))

    @classmethod
    def from_run(cls, path: Path, threshold: float = 0.0,
                 medium_threshold: float = 0.0) -> CrisisHead:
        """From a run's ``adapter/svm.npz`` (``classifier: embedding-svm``)."""
        return cls._read(path, threshold, medium_threshold)

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> CrisisHead:
        return cls._read(path)

    def __post_init__(self) -> None:
        if self.ngram_weights is not None and self.ngram_weights.shape != (NGRAM_BUCKETS,):
            raise MindwellError(
                f"The crisis head's n-gram weights have shape {self.ngram_weights.shape}, "
                f"not ({NGRAM_BUCKETS},): it was built by another version of mindwell.",
                "Rebuild it with `mindwell train` and scripts/ship_crisis_head.py.")
        # Computed once: per-message scoring is then one small matrix product.
        object.__setattr__(self, "_support_norms", (self.support_vectors**2).sum(1))
        # A contiguous transposed copy: the per-message product is 2-3x faster than
        # through the transposed view.
        object.__setattr__(self, "_support_columns",
                           np.ascontiguousarray(self.support_vectors.T))

    def svm_scores(self, vectors: np.ndarray) -> np.ndarray:
        """The support-vector machine's decision value for each embedding."""
        squared = ((vectors**2).sum(1)[:, None] + self._support_norms[None, :]
                   - 2.0 * vectors @ self._support_columns)
        return np.exp(-self.gamma * np.maximum(squared, 0.0)) @ self.dual_coef + self.intercept

    def ngram_scores(self, texts: list[str]) -> np.ndarray:
        """The n-gram model's log-odds for each text (zeros when the head has none)."""
        if self.ngram_weights is None:
            return np.zeros(len(texts))
        scores = []
        for text in texts:
            features = ngram_features(text)
            buckets = np.fromiter(features.keys(), dtype=np.int64, count=len(features))
            values = np.fromiter(features.values(), dtype=np.float64, count=len(features))
            scores.append(float(self.ngram_weights[buckets] @ values))
        return np.array(scores) + self.ngram_intercept

    def scores(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """Decision value per text (> threshold: crisis). ``vectors``: the texts'
        embeddings when the caller has them; otherwise one embedder call for all."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        if vectors is None:
            from mindwell.models.embedder import get_embedder

            vectors = get_embedder().encode(texts)
        svm_weight, ngram_weight, bias = self.blend
        decision = svm_weight * self.svm_scores(vectors) + bias
        if ngram_weight:
            decision = decision + ngram_weight * self.ngram_scores(texts)
        return decision

    def save(self, path: Path) -> None:
        # float16 halves the file; decision values move by ~2e-3 (measured), inside the
        # margin the shipped threshold keeps.
        words = {} if self.ngram_weights is None else {
            "ngram_weights": self.ngram_weights.astype(np.float16),
            "ngram_intercept": np.float32(self.ngram_intercept),
            "blend": np.array(self.blend, dtype=np.float32)}
        np.savez_compressed(
            path, support_vectors=self.support_vectors.astype(np.float16),
            dual_coef=self.dual_coef.astype(np.float32), intercept=np.float32(self.intercept),
            gamma=np.float32(self.gamma), threshold=np.float32(self.threshold),
            medium_threshold=np.float32(self.medium_threshold), **words)


@cache
def shipped_head() -> CrisisHead:
    return CrisisHead.load()
