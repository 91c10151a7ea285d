"""Losses: chunked causal-LM cross-entropy and class-weighted classification.

Gemma's 262,144-token vocabulary makes the logits tensor the largest thing in training
(batch 4 x 256 tokens x 262k x 4 bytes = 1 GB, twice with its gradient). Only answer tokens
carry labels, so ``chunked_lm_loss`` projects just those hidden states to the vocabulary, a
chunk at a time, and computes each chunk's gradient right away (a fused linear
cross-entropy): no logits are kept for the backward pass and none are recomputed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mindwell.train.sft import IGNORE_INDEX


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                softcap: float | None) -> torch.Tensor:
    logits = F.linear(hidden, weight).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` with its gradients computed in forward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk_size):
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight) if weight.requires_grad else None
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start:start + chunk_size]
            target = targets[start:start + chunk_size]
            logits = F.linear(h, weight).float()
            capped = None
            if softcap:
                capped = torch.tanh(logits / softcap)
                logits = capped * softcap
            log_norm = torch.logsumexp(logits, dim=-1)
            total += (log_norm - logits.gather(1, target[:, None]).squeeze(1)).sum()
            # d(loss)/d(logits) = softmax - one_hot, built in place over the logits buffer.
            grad = logits.sub_(log_norm[:, None]).exp_()
            grad[torch.arange(len(target)), target] -= 1
            if capped is not None:
                grad.mul_(1 - capped.pow_(2))
            grad = grad.to(h.dtype)
            grad_hidden[start:start + chunk_size] = grad @ weight
            if grad_weight is not None:
                grad_weight += grad.T @ h
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else
                              torch.empty(0))
        ctx.has_weight_grad = grad_weight is not None
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (grad_hidden * grad_output,
                grad_weight * grad_output if ctx.has_weight_grad else None, None, None, None)


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
    if torch.is_grad_enabled():
        total = _FusedLinearCrossEntropy.apply(hidden, lm_head_weight, targets, softcap,
                                               chunk_size)
    else:
        total = sum(_chunk_loss(hidden[i:i + chunk_size], targets[i:i + chunk_size],
                                lm_head_weight, softcap) for i in range(0, count, chunk_size))
    return total / count, count


def balanced_class_weights(label_ids: list[int], num_labels: int) -> list[float]:
    """n_samples / (n_classes * count_c), as scikit-learn's "balanced"; absent classes get 0."""
    counts = [0] * num_labels
    for label in label_ids:
        counts[label] += 1
    total = len(label_ids)
    return [total / (num_labels * c) if c else 0.0 for c in counts]
