"""Train the one reader behind `mindwell analyze` and the safety gate, and ship it.

    python scripts/build_analysis_data.py        # runs/data/*.csv (never committed)
    python scripts/build_crisis_data.py          # runs/data/crisis.jsonl
    python scripts/train_text_reader.py [--epochs 4] [--ship]

One encoder (the embedded multilingual USE, upper layers tuned, ``mindwell.train.encoder``)
with five heads trained together in mixed batches: English emotion (GoEmotions' Ekman groups
+ neutral), Korean emotion (4 classes), depression (tweets, Reddit and the project's diary
entries with hard negatives, ``configs/data/diary/``), and the safety gate's risk / protocol
(``runs/data/crisis.jsonl``). At run time one forward pass per message feeds all of them.

Validation: each data set's own dev split (GoEmotions dev, the fixed 80/10/10 splits of
build_analysis_data.py, 15 % of the crisis groups, 10 % of the diary entries by hash).
The risk head trains the shared layers on crisis data; it replaces the safety gate's
reader only with ``--ship-safety``, after a comparison on every safety suite (the first
such reader kept fewer crises on the development suites than the gate's own: docs/analysis.md).
After training:
- English emotion: per-class logit offsets chosen on GoEmotions dev for macro F1 (the issue's
  metric), since the rarest group (disgust) is under-predicted at the arg max;
- safety thresholds: as scripts/train_safety_reader.py (recall first on validation, then
  lowered until every development suite keeps ``--dev-recall`` through the whole gate).
Writes ``--out``: heads/ (text_reader.npz, the tuned layers, and the three heads on it),
safety_reader.npz, metrics.json, training.png. ``--ship`` copies heads/ into the package.
Test splits are read by benchmarks/analysis_models.py, never here.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "runs" / "data"
DIARY = ROOT / "configs" / "data" / "diary"
ENGLISH_EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
KOREAN_EMOTIONS = ("무감정", "슬픔", "기쁨", "분노")


def _safety_script():
    spec = importlib.util.spec_from_file_location("train_safety_reader",
                                                  ROOT / "scripts" / "train_safety_reader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        sys.exit(f"{path} is missing: run scripts/build_analysis_data.py first.")
    with path.open(newline="") as handle:
        return [(row["text"], row["label"]) for row in csv.DictReader(handle)]


def diary_rows() -> tuple[list[dict], list[dict]]:
    """The project's diary entries, 10 % held out for validation by a hash of the text."""
    rows = []
    for path in sorted(DIARY.glob("diary_*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    held = [r for r in rows if hashlib.sha256(r["text"].encode()).digest()[0] < 26]
    return [r for r in rows if r not in held], held


def build_tasks(args):
    from mindwell.train.encoder import EncoderTask, balanced_class_weights

    safety = _safety_script()
    diary_train, diary_dev = diary_rows()
    print(f"diary entries: {len(diary_train)} training, {len(diary_dev)} validation")
    repeat = args.diary_repeat

    def emotion_task(name, labels, train, dev, diary_lang, per_epoch):
        index = {label: i for i, label in enumerate(labels)}
        extra = [(r["text"], r["emotion"]) for r in diary_train
                 if r.get("lang", diary_lang) == diary_lang and r["emotion"] in index] * repeat
        extra_dev = [(r["text"], r["emotion"]) for r in diary_dev
                     if r.get("lang", diary_lang) == diary_lang and r["emotion"] in index]
        rows, dev = train + extra, dev + extra_dev
        ids = np.array([index[label] for _, label in rows])
        return EncoderTask(name, "softmax", labels, [t for t, _ in rows], ids,
                           [t for t, _ in dev], np.array([index[label] for _, label in dev]),
                           balanced_class_weights(ids, len(labels), args.class_power),
                           per_epoch=per_epoch)

    # Diary files carry their language by file name when rows lack "lang".
    for rows in (diary_train, diary_dev):
        for r in rows:
            r.setdefault("lang", "ko" if any("\uac00" <= c <= "\ud7a3" for c in r["text"])
                         else "en")
    emotion_en = emotion_task("emotion_en", ENGLISH_EMOTIONS,
                              read_csv(DATA / "goemotions_ekman_train.csv"),
                              read_csv(DATA / "goemotions_ekman_dev.csv"), "en", args.per_epoch)
    emotion_ko = emotion_task("emotion_ko", KOREAN_EMOTIONS,
                              read_csv(DATA / "ko_emotion_train.csv"),
                              read_csv(DATA / "ko_emotion_dev.csv"), "ko", args.per_epoch)
    dep_train = [(t, int(y)) for t, y in read_csv(DATA / "depression_both_train.csv")]
    dep_dev = [(t, int(y)) for t, y in read_csv(DATA / "depression_both_dev.csv")]
    dep_train += [(r["text"], int(r["depression"])) for r in diary_train] * repeat
    dep_dev += [(r["text"], int(r["depression"])) for r in diary_dev]
    dep_ids = np.array([y for _, y in dep_train])
    depression = EncoderTask("depression", "softmax", ("no", "yes"), [t for t, _ in dep_train],
                             dep_ids, [t for t, _ in dep_dev], np.array([y for _, y in dep_dev]),
                             balanced_class_weights(dep_ids, 2, 1.0), per_epoch=args.per_epoch)
    crisis_path = DATA / "crisis.jsonl"
    if not crisis_path.exists():
        sys.exit(f"{crisis_path} is missing: run scripts/build_crisis_data.py first.")
    crisis = [json.loads(line) for line in crisis_path.read_text().splitlines() if line.strip()]
    training, validation = safety.split_groups(crisis, 0.15, args.seed)

    def risk_targets(rows):
        return np.array([[r["risk"], r["protocol"]] for r in rows], dtype=np.float32)

    risk = EncoderTask("risk", "sigmoid", ("risk", "protocol"), [r["text"] for r in training],
                       risk_targets(training), [r["text"] for r in validation],
                       risk_targets(validation), loss_weight=args.risk_weight,
                       per_epoch=args.risk_per_epoch)
    return [emotion_en, emotion_ko, depression, risk], validation, diary_dev


def tune_offsets(probabilities: np.ndarray, targets: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class log-probability offsets that raise macro F1 on validation (coordinate
    ascent over a small grid; the first class stays at 0)."""
    from sklearn.metrics import f1_score

    logs = np.log(np.clip(probabilities, 1e-9, 1))
    offsets = np.zeros(probabilities.shape[1])

    def score(o):
        return f1_score(targets, (logs + o).argmax(1), average="macro")

    best = score(offsets)
    for _ in range(rounds):
        for c in range(1, len(offsets)):
            for value in np.arange(-1.5, 1.51, 0.1):
                trial = offsets.copy()
                trial[c] = value
                s = score(trial)
                if s > best + 1e-6:
                    best, offsets = s, trial
    return offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs/text-reader")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--per-epoch", type=int, default=12000,
                        help="rows drawn per task per epoch (the crisis task uses all)")
    parser.add_argument("--risk-per-epoch", type=int, default=0, help="0: every crisis row")
    parser.add_argument("--risk-weight", type=float, default=1.0)
    parser.add_argument("--dev-rows", type=int, default=2000)
    parser.add_argument("--class-power", type=float, default=0.5)
    parser.add_argument("--diary-repeat", type=int, default=3,
                        help="copies of each diary entry (few rows, the target domain)")
    parser.add_argument("--blend", type=float, default=0.5)
    parser.add_argument("--dev-recall", type=float, default=0.98)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ship", action="store_true",
                        help="copy the text reader and its heads into the package")
    parser.add_argument("--ship-safety", action="store_true",
                        help="also make its risk head the safety gate's reader (only after "
                        "comparing it on every safety suite: benchmarks/safety_gate.py)")
    args = parser.parse_args()

    from mindwell.analysis.analyzer import HEADS_DIR, LinearHead, TextReader
    from mindwell.safety.evaluate import read_suite
    from mindwell.safety.reader import READER_PATH, usem3_arrays
    from mindwell.train.encoder import (
        EncoderTrainingArguments,
        predict,
        save_history_plot,
        train_encoder,
    )

    safety = _safety_script()
    tasks, validation, diary_dev = build_tasks(args)
    encoder, heads, history, seconds = train_encoder(tasks, EncoderTrainingArguments(
        epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr,
        head_learning_rate=args.head_lr, seed=args.seed, threads=args.threads,
        dev_rows=args.dev_rows))
    args.out.mkdir(parents=True, exist_ok=True)
    save_history_plot(history, args.out / "training.png",
                      ["emotion_en/f1_macro", "emotion_ko/f1_weighted", "depression/accuracy",
                       "risk/risk_auc", "risk/protocol_auc"])

    by_name = {t.name: t for t in tasks}
    summary = {"train_seconds": round(seconds), "epochs": args.epochs, "history": history,
               "args": {k: str(v) for k, v in vars(args).items()}}
    # English emotion: offsets for macro F1 on the full dev split.
    task = by_name["emotion_en"]
    probabilities = predict(encoder, {"emotion_en": heads["emotion_en"]}, task.dev_texts)
    offsets = tune_offsets(probabilities["emotion_en"], task.dev_targets)
    from sklearn.metrics import f1_score

    summary["emotion_en_offsets"] = [round(float(o), 2) for o in offsets]
    summary["emotion_en_dev_f1_macro"] = {
        "arg_max": round(float(f1_score(task.dev_targets, probabilities["emotion_en"].argmax(1),
                                        average="macro")), 4),
        "with_offsets": round(float(f1_score(
            task.dev_targets, (np.log(np.clip(probabilities["emotion_en"], 1e-9, 1))
                               + offsets).argmax(1), average="macro")), 4)}
    heads_out = args.out / "heads"
    heads_out.mkdir(exist_ok=True)
    for name, file in (("emotion_en", "emotion_en"), ("emotion_ko", "emotion_ko"),
                       ("depression", "depression")):
        head = heads[name][0]
        bias = head.bias.detach().numpy().astype(np.float32).copy()
        if name == "emotion_en":
            bias = bias + offsets.astype(np.float32)  # softmax(logit + log-offset)
        labels = by_name[name].labels if name != "depression" else ("0", "1")
        LinearHead(head.weight.detach().numpy().astype(np.float32).copy(), bias,
                   tuple(labels), "text_reader").save(heads_out / f"{file}.npz")
    TextReader(usem3_arrays(encoder.state_dict_delta())).save(heads_out / "text_reader.npz")
    if diary_dev:
        dev_probabilities = predict(encoder, {"depression": heads["depression"]},
                                    [r["text"] for r in diary_dev])["depression"][:, 1]
        truth = np.array([int(r["depression"]) for r in diary_dev])
        predicted = dev_probabilities >= 0.5
        summary["diary_dev_depression"] = {
            "n": len(truth), "accuracy": round(float((predicted == truth).mean()), 4),
            "precision": round(float(truth[predicted].mean()) if predicted.any() else 0.0, 4),
            "recall": round(float(predicted[truth == 1].mean()), 4)}

    # The safety gate's reader: thresholds recall first, as train_safety_reader.py.
    reader = safety.to_reader(encoder, heads["risk"][0], 0.0, 0.0, 0.0)
    reader.blend = args.blend
    risk_scores, protocol_scores = reader.scores([r["text"] for r in validation])
    risk = np.array([r["risk"] for r in validation]) == 1
    protocol = np.array([r["protocol"] for r in validation]) == 1
    check_in = safety.highest_keeping(risk_scores, risk, 0.95)
    protocol_threshold = safety.highest_keeping(protocol_scores, protocol, 0.95)
    suites = [read_suite(path) for path in safety.DEV_SUITES]
    recalls = [0.0]
    for _ in range(40):
        reader.check_in_threshold, reader.attention = check_in, check_in / 2
        reader.protocol_threshold = max(protocol_threshold, check_in)
        recalls = safety.suite_recalls(reader, suites)
        print(f"thresholds {check_in:.4f} / {reader.protocol_threshold:.4f}: dev recall "
              f"{[round(r, 3) for r in recalls]}", flush=True)
        if min(recalls) >= args.dev_recall:
            break
        check_in -= 0.02
    summary["thresholds"] = {"check_in": check_in, "protocol": reader.protocol_threshold,
                             "validation_protocol": protocol_threshold, "blend": args.blend,
                             "dev_recalls": recalls}
    ok = min(recalls) >= args.dev_recall and check_in > 0
    reader.save(args.out / "safety_reader.npz")
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2,
                     ensure_ascii=False))
    if args.ship:
        for path in heads_out.glob("*.npz"):
            shutil.copy(path, HEADS_DIR / path.name)
        print(f"shipped {HEADS_DIR}/*.npz (the text reader and its heads)")
    if args.ship_safety:
        if not ok:
            sys.exit(f"No check-in threshold keeps recall {args.dev_recall} on the development "
                     "suites: the safety reader was not shipped.")
        shutil.copy(args.out / "safety_reader.npz", READER_PATH)
        print(f"shipped {READER_PATH}")


if __name__ == "__main__":
    main()
