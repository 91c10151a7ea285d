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

    @classmethod
    def load(cls, name: str, directory: Path = HEADS_DIR) -> LinearHead:
        path = directory / f"{name}.npz"
        try:
            with np.load(path) as saved:
                return cls(saved["weight"], saved["bias"], tuple(str(x) for x in saved["labels"]))
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
        np.savez(path, weight=self.weight, bias=self.bias, labels=np.array(self.labels))

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


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
        self.risk = risk or RiskAssessor()
        from mindwell.models.embedder import get_embedder

        self.encoder = get_embedder()

    def analyze(self, texts: list[str]) -> list[dict]:
        """One result per text, in order; a text that cannot be analysed gets ``error``."""
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
            vectors = self.encoder.encode([text for text, _ in prepared])
            depression = self.depression.probabilities(vectors)[:, 1]
            emotion_en = self.emotion_en.probabilities(vectors)
            emotion_ko = self.emotion_ko.probabilities(vectors)
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
                risk = self.risk.assess(text, vector=vectors[row])
                result = {
                    "language": language,
                    "depression": {"label": int(depression[row] >= 0.5),
                                   "score": round(float(depression[row]), 4)},
                    "emotion": {"label": head.labels[int(probs.argmax())],
                                "scores": {label: round(float(p), 4)
                                           for label, p in zip(head.labels, probs, strict=True)}},
                    "risk": risk.as_dict(),
                }
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
