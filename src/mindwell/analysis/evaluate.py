"""`mindwell eval classifier`: one report for one or more text classifiers on labelled data.

A classifier is a shipped analysis head (``depression``, ``emotion-en``, ``emotion-ko``), a
``mindwell train`` run of an embedding head or SVM, or a LoRA classifier run (loaded
through PEFT). Each is scored on the same rows: accuracy, precision/recall/F1 weighted and
macro, a per-class table, AUROC for two classes, a confusion matrix and a reliability
(calibration) plot. Several models give one table with a column each.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mindwell.errors import MindwellError

SHIPPED = {"depression": "depression", "emotion-en": "emotion_en", "emotion-ko": "emotion_ko"}


@dataclass
class Classifier:
    name: str
    labels: tuple[str, ...]
    predict_proba: object  # Callable[[list[str]], np.ndarray]


def _embedding_predictor(head):
    from mindwell.models.embedder import embed_texts

    def predict(texts: list[str]) -> np.ndarray:
        if head.reads == "text_reader":  # a head trained on the tuned reader's vectors
            return head.probabilities(shipped_text_reader().vectors(texts))
        return head.probabilities(embed_texts(texts))

    return predict


def shipped_text_reader():
    from mindwell.analysis.analyzer import HEADS_DIR, TextReader

    return TextReader.load(HEADS_DIR / "text_reader.npz")


def load_classifier(spec: str) -> Classifier:
    """A shipped head name or a `mindwell train` classification run directory."""
    from mindwell.analysis.analyzer import LinearHead

    if spec in SHIPPED:
        head = LinearHead.load(SHIPPED[spec])
        return Classifier(spec, head.labels, _embedding_predictor(head))
    run = Path(spec)
    adapter = run / "adapter"
    if (run / EXPORTED_CONFIG).exists():
        return _exported_classifier(run)
    if not run.is_dir():
        raise MindwellError(f"Unknown classifier '{spec}'.",
                            f"Use one of {', '.join(SHIPPED)} or a `mindwell train` run "
                            "directory of a classify recipe.")
    if (adapter / "encoder.safetensors").exists():
        return _encoder_classifier(run)
    if (adapter / "head.safetensors").exists():
        head = LinearHead.from_run(adapter)
        return Classifier(run.name, head.labels, _embedding_predictor(head))
    if (adapter / "svm.npz").exists():
        from mindwell.safety.learned import CrisisHead

        svm = CrisisHead.from_run(adapter / "svm.npz")
        labels = tuple(json.loads((adapter / "head_config.json").read_text())["labels"])

        def predict_svm(texts: list[str]) -> np.ndarray:
            positive = 1.0 / (1.0 + np.exp(-2.0 * svm.scores(texts)))  # a monotone squash
            return np.stack([1.0 - positive, positive], axis=1)

        return Classifier(run.name, labels, predict_svm)
    if (adapter / "adapter_config.json").exists():
        return _lora_classifier(run)
    raise MindwellError(f"{run} has no trained classifier in {adapter}.",
                        "Point --model at the output_dir of a finished classify run.")


def _encoder_classifier(run: Path) -> Classifier:
    """A ``classifier: encoder`` run: the fine-tuned encoder delta and its head."""
    import torch
    from safetensors.torch import load_file

    from mindwell.models.use_torch import load_use_encoder, tokenize

    adapter = run / "adapter"
    encoder = load_use_encoder(load_file(str(adapter / "encoder.safetensors"))).eval()
    saved = load_file(str(adapter / "head.safetensors"))
    head = torch.nn.Linear(saved["weight"].shape[1], saved["weight"].shape[0])
    head.load_state_dict(saved)
    labels = tuple(json.loads((adapter / "head_config.json").read_text())["labels"])

    def predict(texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for first in range(0, len(texts), 256):
                logits = head(encoder(tokenize(texts[first:first + 256])))
                out.append(torch.softmax(logits, 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(labels)))

    return Classifier(run.name, labels, predict)


EXPORTED_CONFIG = "mindwell_classifier.json"


def _load_lora_classifier(run: Path):
    """(model with adapter, tokenizer, labels, max_length) of a LoRA classify run."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mindwell.models.hf import checkpoint_location, read_adapter_base
    from mindwell.models.registry import resolve

    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    labels = tuple(recipe.get("labels") or [])
    # The base is a registry name (the embedded GGUF, converted and cached), a path or a
    # hub id, as when training.
    base = checkpoint_location(resolve(read_adapter_base(run / "adapter")))
    if not labels:
        raise MindwellError(f"{run}/recipe.yaml does not name its labels.")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), attn_implementation="eager")
    except OSError as err:
        raise MindwellError(f"Cannot load the base model {base} of {run}: {err}.",
                            "The base must be on this machine (mindwell caches it when "
                            "training).") from err
    model = PeftModel.from_pretrained(model, str(run / "adapter")).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(run / "adapter"))
    return model, tokenizer, labels, int(recipe.get("max_length") or 256)


def _torch_predictor(model, tokenizer, max_length: int):
    import torch

    def predict(texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                batch = tokenizer(texts[i:i + 16], padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt")
                out.append(torch.softmax(model(**batch).logits.float(), -1).numpy())
        return np.concatenate(out)

    return predict


def _lora_classifier(run: Path) -> Classifier:
    model, tokenizer, labels, max_length = _load_lora_classifier(run)
    return Classifier(run.name, labels, _torch_predictor(model, tokenizer, max_length))


def _exported_classifier(directory: Path) -> Classifier:
    """A classifier written by `mindwell export`: merged weights, no PEFT at load time."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = json.loads((directory / EXPORTED_CONFIG).read_text())
    labels = tuple(config["labels"])
    if config["kind"] == "linear-head":
        from mindwell.analysis.analyzer import LinearHead

        head = LinearHead.load("head", directory)
        return Classifier(config["name"], head.labels, _embedding_predictor(head))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(directory), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    return Classifier(config["name"], labels,
                      _torch_predictor(model, tokenizer, config["max_length"]))


def export_classifier_files(run: Path, target: Path) -> dict[str, Path]:
    """Write a run's classifier in the fastest form the analysis code loads directly.

    A LoRA classifier is merged into its base (one plain checkpoint: no PEFT, no adapter
    indirection at inference); an embedding head is already a few kilobytes of numpy.
    """
    from mindwell.analysis.analyzer import LinearHead

    adapter = run / "adapter"
    target.mkdir(parents=True, exist_ok=True)
    if (adapter / "encoder.safetensors").exists():
        return _encoder_classifier(run)
    if (adapter / "head.safetensors").exists():
        head = LinearHead.from_run(adapter)
        head.save(target / "head.npz")
        config = {"kind": "linear-head", "name": run.name, "labels": list(head.labels)}
    elif (adapter / "adapter_config.json").exists():
        model, tokenizer, labels, max_length = _load_lora_classifier(run)
        merged = model.merge_and_unload()
        merged.config.id2label = dict(enumerate(labels))
        merged.config.label2id = {label: i for i, label in enumerate(labels)}
        merged.save_pretrained(target)
        tokenizer.save_pretrained(target)
        config = {"kind": "merged", "name": run.name, "labels": list(labels),
                  "max_length": max_length}
    else:
        raise MindwellError(f"{run} has no exportable classifier in {adapter}.",
                            "Export a LoRA or embedding-head classify run; SVM heads ship "
                            "as they are (svm.npz).")
    (target / EXPORTED_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return {"classifier": target}


def score(classifier: Classifier, texts: list[str], truth: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    from mindwell.analysis.metrics import classification_metrics

    unknown = sorted(set(truth) - set(classifier.labels))
    if unknown:
        raise MindwellError(
            f"The data has labels {unknown} that {classifier.name} does not know "
            f"({', '.join(classifier.labels)}).",
            "Map the labels first, or evaluate a model trained on this label set.")
    index = {label: i for i, label in enumerate(classifier.labels)}
    y = np.array([index[t] for t in truth])
    probs = classifier.predict_proba(texts)
    predicted = probs.argmax(1)
    result = classification_metrics(y, predicted)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=range(len(classifier.labels)), zero_division=0)
    result["per_class"] = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(classifier.labels)}
    if len(classifier.labels) == 2 and len(set(y)) == 2:
        result["auroc"] = float(roc_auc_score(y, probs[:, 1]))
    result["confusion"] = confusion_matrix(y, predicted,
                                           labels=range(len(classifier.labels))).tolist()
    confidence = probs.max(1)
    bins = np.linspace(0, 1, 11)
    reliability = []
    for low, high in itertools.pairwise(bins):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            reliability.append({"confidence": float(confidence[inside].mean()),
                                "accuracy": float((predicted[inside] == y[inside]).mean()),
                                "count": int(inside.sum())})
    result["reliability"] = reliability
    result["expected_calibration_error"] = float(sum(
        r["count"] * abs(r["confidence"] - r["accuracy"]) for r in reliability) / len(y))
    result["n"] = len(y)
    return result


def _tick_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Labels as plots can draw them: Korean needs a Hangul font, else c0, c1, ..."""
    if all(label.isascii() for label in labels):
        return labels
    from matplotlib import font_manager, rcParams

    hangul_fonts = [f.name for f in font_manager.fontManager.ttflist
                    if any(key in f.name for key in ("CJK", "Nanum", "Malgun", "Gothic"))]
    if hangul_fonts:
        rcParams["font.family"] = [hangul_fonts[0], "DejaVu Sans"]
        return labels
    return tuple(f"c{i}" for i in range(len(labels)))


def _plots(name: str, labels: tuple[str, ...], result: dict, out_dir: Path) -> list[str]:
    """Writes the confusion matrix and reliability plot; labels are the tick labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    matrix = np.array(result["confusion"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black", fontsize=8)
    ax.set_title(f"{name}: confusion matrix")
    fig.tight_layout()
    confusion_png = f"confusion_{safe}.png"
    fig.savefig(out_dir / confusion_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    points = result["reliability"]
    ax.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], marker="o",
            label=f"{name} (ECE {result['expected_calibration_error']:.3f})")
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ax.set_title("reliability")
    fig.tight_layout()
    reliability_png = f"reliability_{safe}.png"
    fig.savefig(out_dir / reliability_png, dpi=110)
    plt.close(fig)
    return [confusion_png, reliability_png]


def write_report(results: dict[str, tuple[Classifier, dict]], data: str, out_dir: Path) -> Path:
    """report.md and report.json (and plots) for the scored classifiers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(results)
    lines = [f"# Classifier evaluation\n\nData: `{data}` ({results[names[0]][1]['n']} rows)\n",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted",
                   "precision_macro", "recall_macro", "f1_macro", "auroc",
                   "expected_calibration_error"):
        if any(metric in result for _, result in results.values()):
            lines.append(f"| {metric} | " + " | ".join(
                f"{result[metric]:.4f}" if metric in result else "-"
                for _, result in results.values()) + " |")
    for name, (classifier, result) in results.items():
        lines += [f"\n## {name}\n", "| class | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        lines += [f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                  f"{m['support']} |" for label, m in result["per_class"].items()]
        ticks = _tick_labels(classifier.labels)
        confusion_png, reliability_png = _plots(name, ticks, result, out_dir)
        if ticks != classifier.labels:
            lines += ["", "Plot labels: " + ", ".join(
                f"{tick} = {label}" for tick, label in zip(ticks, classifier.labels, strict=True))]
        lines += ["", f"![confusion matrix]({confusion_png}) ![reliability]({reliability_png})"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out_dir / "report.json").write_text(json.dumps(
        {name: result for name, (_, result) in results.items()}, indent=2, ensure_ascii=False))
    return report


def load_text_reader_run(directory: Path):
    """A TextAnalyzer from a scripts/train_text_reader.py output directory (its
    ``heads/``: the text reader and the heads on it), to compare with the shipped one.
    The safety gate is the shipped one."""
    from mindwell.analysis.analyzer import TextAnalyzer

    heads = directory / "heads"
    if not (heads / "text_reader.npz").exists():
        raise MindwellError(f"{directory} is not a text reader run (no heads/text_reader.npz).",
                            "Point at the --out directory of scripts/train_text_reader.py.")
    return TextAnalyzer(heads)


def evaluate_diary(analyzer, rows: list[dict]) -> dict:
    """Depression and emotion on labelled diary entries, per language: rows with ``text``,
    ``lang`` (en/ko), ``depression`` (0/1) and ``emotion``. Also how many entries the safety
    gate would not answer normally (none of a diary set without crises should be)."""
    from sklearn.metrics import f1_score

    results = analyzer.analyze([row["text"] for row in rows])
    report: dict = {}
    for lang in sorted({row["lang"] for row in rows}):
        picked = [(row, res) for row, res in zip(rows, results, strict=True)
                  if row["lang"] == lang and "error" not in res]
        truth = np.array([int(row["depression"]) for row, _ in picked])
        said = np.array([res["depression"]["label"] for _, res in picked])
        emotions = [row["emotion"] for row, _ in picked]
        guessed = [res["emotion"]["label"] for _, res in picked]
        true_positive = int(((said == 1) & (truth == 1)).sum())
        report[lang] = {
            "n": len(picked),
            "depression_accuracy": round(float((said == truth).mean()), 3),
            "depression_precision": round(true_positive / max(int(said.sum()), 1), 3),
            "depression_recall": round(true_positive / max(int(truth.sum()), 1), 3),
            "emotion_accuracy": round(float(np.mean([a == b for a, b in
                                                     zip(emotions, guessed, strict=True)])), 3),
            "emotion_f1_macro": round(float(f1_score(emotions, guessed, average="macro",
                                                     zero_division=0)), 3),
            "not_normal_reply": round(float(np.mean([res["risk"]["action"] != "normal"
                                                     for _, res in picked])), 3),
        }
    return report
