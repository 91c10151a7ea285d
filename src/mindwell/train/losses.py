"""Losses: chunked causal-LM cross-entropy and class-weighted classification.

Gemma's 262,144-token vocabulary makes the logits tensor the largest thing in training
(batch 4 x 256 tokens x 262k x 4 bytes = 1 GB, twice with its gradient). Only answer tokens
carry labels, so ``chunked_lm_loss`` projects just those hidden states to the vocabulary, a
chunk at a time, recomputing each chunk in the backward pass instead of storing it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                softcap: float | None) -> torch.Tensor:
    logits = F.linear(hidden, weight).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_lm_loss(
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    lm_head_weight: torch.Tensor,
    softcap: float | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, int]:
    """(mean loss over labelled tokens, their count); equal to the usual shifted loss."""
    hidden = hidden_states[:, :-1, :]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    hidden, targets = hidden[keep], targets[keep]
    count = int(targets.numel())
    if count == 0:
        return hidden_states.sum() * 0.0, 0
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, count, chunk_size):
        piece = slice(start, start + chunk_size)
        if torch.is_grad_enabled():
            total = total + checkpoint(
                _chunk_loss, hidden[piece], targets[piece], lm_head_weight, softcap,
                use_reentrant=False,
            )
        else:
            total = total + _chunk_loss(hidden[piece], targets[piece], lm_head_weight, softcap)
    return total / count, count


def balanced_class_weights(label_ids: list[int], num_labels: int) -> list[float]:
    """n_samples / (n_classes * count_c), as scikit-learn's "balanced"; absent classes get 0."""
    counts = [0] * num_labels
    for label in label_ids:
        counts[label] += 1
    total = len(label_ids)
    return [total / (num_labels * c) if c else 0.0 for c in counts]
