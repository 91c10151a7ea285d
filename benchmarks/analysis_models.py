"""Text analysis: the shipped heads vs baselines on held-out test splits, and their speed.

Quality, each on a split never used for training or tuning (fixed splits from
``scripts/build_analysis_data.py``):
- depression: the shipped head (trained on tweets + Reddit) on each set's test split; the
  cross-dataset pair (a head trained with the same recipe on one set, tested on the other);
  dreaddit's test split (stress) as a related task; baselines: VADER (compound < -0.05 means
  depressed) and the majority class;
- emotion EN: GoEmotions' test split at the Ekman level (macro F1), dair-ai emotion's test
  split as a cross-domain check (love counted as joy; it has no neutral or disgust);
- emotion KO: the Korean 4-class test split (weighted F1);
Speed on this CPU: texts per second batched (1,000 diary-like sentences, the full analysis
including risk), one short text after load, and load time.
The published approach, LoRA-tuned Gemma 3 270M classifiers, joins the same tables when
its runs are given (``--lora``: output_dirs of configs/*-gemma-lora.yaml and
configs/ko-emotion-4class.yaml), each scored on the same test splits, with its speed.
Targets (issue 5): depression >= 95 % accuracy in-distribution, Korean weighted F1 >= 0.80,
GoEmotions Ekman macro F1 >= 0.60, >= 200 texts/s, <= 20 ms per text, load <= 3 s.

    python scripts/build_analysis_data.py && python benchmarks/analysis_models.py \
        [--lora runs/depression-gemma-lora runs/emotion-en-gemma-lora ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np

from _report import median, table, write_section
from mindwell.analysis.metrics import classification_metrics

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "runs" / "data"
SHARED = ROOT.parent / "shared" / "data"


def read(name: str) -> tuple[list[str], list[str]]:
    with (DATA / f"{name}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def scores(truth: list[str], predicted: list[str], labels: list[str]) -> dict:
    index = {label: i for i, label in enumerate(labels)}
    return classification_metrics([index[t] for t in truth], [index[p] for p in predicted])


def fmt(metrics: dict) -> list[str]:
    return [f"{metrics['accuracy']:.3f}", f"{metrics['f1_macro']:.3f}",
            f"{metrics['f1_weighted']:.3f}"]


def head_predict(head, vectors: np.ndarray) -> list[str]:
    return [head.labels[i] for i in head.probabilities(vectors).argmax(1)]


def train_cross_head(data: str, eval_data: str, name: str):
    """A head with the shipped recipe, trained on one depression set only."""
    from mindwell.analysis.analyzer import LinearHead
    from mindwell.train.recipe import load_recipe
    from mindwell.train.runner import train

    out = ROOT / "runs" / f"depression-embedding-{name}"
    recipe = load_recipe(ROOT / "configs" / "depression-embedding.yaml",
                         [f"data={data}", f"eval_data={eval_data}", f"output_dir={out}"])
    train(recipe)
    return LinearHead.from_run(out / "adapter")


def frozen_heads() -> dict[str, object]:
    """Today's baseline: linear heads on the frozen encoder, trained by their recipes
    (configs/*-embedding.yaml) unless a finished run is already in runs/."""
    from mindwell.analysis.analyzer import LinearHead
    from mindwell.train.recipe import load_recipe
    from mindwell.train.runner import train

    heads = {}
    for name in ("depression", "emotion-en", "emotion-ko"):
        out = ROOT / "runs" / f"{name}-embedding"
        if not (out / "adapter" / "head.safetensors").exists():
            train(load_recipe(ROOT / "configs" / f"{name}-embedding.yaml",
                              [f"output_dir={out}"]))
        heads[name] = LinearHead.from_run(out / "adapter")
    return heads


class Vectors:
    """Each text set embedded once per encoder: the frozen one and the tuned reader."""

    def __init__(self, analyzer) -> None:
        from mindwell.models.embedder import embed_texts

        self.analyzer, self.embed, self.cache = analyzer, embed_texts, {}

    def __call__(self, head, texts: list[str]) -> np.ndarray:
        key = (head.reads, hash(tuple(texts)))
        if key not in self.cache:
            if head.reads == "text_reader":
                self.cache[key] = self.analyzer.reader.vectors(texts)
            else:
                self.cache[key] = self.embed(texts)
        return self.cache[key]


def lora_classifiers(runs: list[Path]) -> dict[tuple[str, ...], list]:
    """The runs' classifiers by label set, each with a row name saying how it was trained."""
    import yaml

    from mindwell.analysis.evaluate import load_classifier

    found: dict[tuple[str, ...], list] = {}
    for run in runs:
        if not (run / "recipe.yaml").exists() or not (run / "adapter").is_dir():
            raise SystemExit(f"{run} is not a finished classify run (no recipe.yaml or "
                             "adapter/): train it first, e.g. mindwell train "
                             "configs/emotion-en-gemma-lora.yaml")
        steps = yaml.safe_load((run / "recipe.yaml").read_text()).get("max_steps", -1)
        classifier = load_classifier(str(run))
        name = (f"Gemma 3 270M LoRA, {steps} steps" if steps and steps > 0
                else "Gemma 3 270M LoRA")
        found.setdefault(tuple(classifier.labels), []).append((name, classifier))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lora", type=Path, nargs="*", default=[],
                        help="LoRA classify run directories to compare with the heads")
    args = parser.parse_args()
    if not DATA.exists() or not SHARED.exists():
        raise SystemExit("Run python scripts/build_analysis_data.py first (needs ../shared/data).")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from mindwell.analysis.analyzer import TextAnalyzer

    started = time.perf_counter()
    analyzer = TextAnalyzer()
    analyzer.analyze(["first use loads the encoder's weights"])
    load_s = time.perf_counter() - started
    vader = SentimentIntensityAnalyzer()
    vectors = Vectors(analyzer)
    frozen = frozen_heads()
    tuned = "**tuned reader (shipped)**" if analyzer.emotion_en.reads == "text_reader" else (
        "**shipped head**")

    def predict(head, texts):
        return head_predict(head, vectors(head, texts))

    lora = lora_classifiers(args.lora)
    lora_speeds: list[list[str]] = []
    rows = []

    def lora_rows(task: str, test_data: str, texts: list[str], truth: list[str],
                  labels: list[str]) -> None:
        """A row for each given LoRA run with these labels, and its speed on this set."""
        for name, model in lora.get(tuple(labels), []):
            started = time.perf_counter()
            predicted = [model.labels[i] for i in model.predict_proba(texts).argmax(1)]
            lora_speeds.append([model.name, test_data,
                                f"{len(texts) / (time.perf_counter() - started):.1f}"])
            rows.append([task, test_data, name, *fmt(scores(truth, predicted, labels))])

    # -- depression ----------------------------------------------------------------------
    with (SHARED / "dreaddit" / "dreaddit-test.csv").open() as handle:
        dreaddit = [(r["text"], r["label"]) for r in csv.DictReader(handle)]
    sets = {"tweets test": read("depression_tweets_test"),
            "Reddit test": read("depression_reddit_test"),
            "dreaddit test (stress)": ([t for t, _ in dreaddit], [y for _, y in dreaddit])}
    only_tweets = train_cross_head("runs/data/depression_tweets_train.csv",
                                   "runs/data/depression_tweets_dev.csv", "tweets")
    only_reddit = train_cross_head("runs/data/depression_reddit_train.csv",
                                   "runs/data/depression_reddit_dev.csv", "reddit")
    for set_name, (texts, truth) in sets.items():
        majority = Counter(truth).most_common(1)[0][0]
        candidates = [
            ("majority class", [majority] * len(texts)),
            ("VADER (compound < -0.05)",
             ["1" if vader.polarity_scores(t)["compound"] < -0.05 else "0" for t in texts]),
            ("frozen-encoder head, tweets only", predict(only_tweets, texts)),
            ("frozen-encoder head, Reddit only", predict(only_reddit, texts)),
            ("frozen-encoder head, tweets + Reddit (before)", predict(frozen["depression"],
                                                                       texts)),
            (tuned, predict(analyzer.depression, texts)),
        ]
        for model, predicted in candidates:
            rows.append(["depression", set_name, model, *fmt(scores(truth, predicted,
                                                                    ["0", "1"]))])
        lora_rows("depression", set_name, texts, truth, ["0", "1"])
    # -- emotion -------------------------------------------------------------------------
    texts, truth = read("goemotions_ekman_test")
    labels = list(analyzer.emotion_en.labels)
    majority = Counter(truth).most_common(1)[0][0]
    rows.append(["emotion EN", "GoEmotions test (Ekman + neutral)", "majority class",
                 *fmt(scores(truth, [majority] * len(truth), labels))])
    for model, head in (("frozen-encoder head (before)", frozen["emotion-en"]),
                        (tuned, analyzer.emotion_en)):
        rows.append(["emotion EN", "GoEmotions test (Ekman + neutral)", model,
                     *fmt(scores(truth, predict(head, texts), labels))])
    lora_rows("emotion EN", "GoEmotions test (Ekman + neutral)", texts, truth, labels)
    dair = [line.rsplit(";", 1) for line in
            (SHARED / "dair_emotion" / "test.txt").read_text().splitlines() if ";" in line]
    dair_truth = [{"love": "joy"}.get(y, y) for _, y in dair]
    dair_texts = [t for t, _ in dair]
    for model, head in (("frozen-encoder head (before)", frozen["emotion-en"]),
                        (tuned, analyzer.emotion_en)):
        rows.append(["emotion EN", "dair-ai emotion test (cross-domain)", model,
                     *fmt(scores(dair_truth, predict(head, dair_texts), labels))])
    lora_rows("emotion EN", "dair-ai emotion test (cross-domain)", dair_texts, dair_truth,
              labels)
    texts, truth = read("ko_emotion_test")
    labels = list(analyzer.emotion_ko.labels)
    majority = Counter(truth).most_common(1)[0][0]
    rows.append(["emotion KO", "Korean 4-class test", "majority class",
                 *fmt(scores(truth, [majority] * len(truth), labels))])
    for model, head in (("frozen-encoder head (before)", frozen["emotion-ko"]),
                        (tuned, analyzer.emotion_ko)):
        rows.append(["emotion KO", "Korean 4-class test", model,
                     *fmt(scores(truth, predict(head, texts), labels))])
    lora_rows("emotion KO", "Korean 4-class test", texts, truth, labels)
    for row in rows:
        print(row, flush=True)

    # -- speed ---------------------------------------------------------------------------
    diary = read("depression_reddit_test")[0][:500] + read("ko_emotion_test")[0][:500]
    diary = [t[:300] for t in diary]
    analyzer.analyze(diary[:64])
    started = time.perf_counter()
    analyzer.analyze(diary)
    per_second = len(diary) / (time.perf_counter() - started)
    singles = []
    for text in ["I couldn't sleep again and everything feels heavy.", "오늘은 기분이 좋아요"] * 10:
        started = time.perf_counter()
        analyzer.analyze([text])
        singles.append((time.perf_counter() - started) * 1000)
    speed = table(["measure", "value", "target"], [
        ["load and first text (encoder, heads, safety gate)", f"{load_s:.2f} s", "<= 3 s"],
        ["batched, 1,000 texts (English Reddit + Korean, <= 300 chars)",
         f"{per_second:.0f} texts/s", ">= 200"],
        ["one short text after load (median of 20)", f"{median(singles):.1f} ms", "<= 20 ms"],
    ])
    body = (table(["task", "test data", "model", "accuracy", "macro F1", "weighted F1"], rows)
            + "\n\n" + speed + "\n\nShipped: the text reader (the embedded multilingual "
            "sentence encoder fine-tuned on every task at once, scripts/train_text_reader.py) "
            "and its heads; before: linear heads on the frozen encoder "
            "(configs/*-embedding.yaml), trained in the same run. Speed counts the whole "
            "analysis: the text reader, the base encoder and the safety gate's reader.")
    if lora_speeds:
        body += (" The Gemma 3 270M LoRA rows are runs of configs/*-gemma-lora.yaml and "
                 "configs/ko-emotion-4class.yaml, cut to the steps shown to fit this CPU; "
                 "their speed, batches of 16 on 2 cores:\n\n"
                 + table(["run", "test data", "texts/s"], lora_speeds))
    command = "python scripts/build_analysis_data.py && python benchmarks/analysis_models.py"
    if args.lora:
        command += " --lora " + " ".join(str(run) for run in args.lora)
    print(write_section("analysis_models", "Text analysis: depression and emotion", body,
                        command))


if __name__ == "__main__":
    main()
