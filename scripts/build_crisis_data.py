"""Build the training table for the learned crisis-risk layer from ../shared/data.

    python scripts/build_crisis_data.py [--out runs/data/crisis.csv]

Positives (label 1, "crisis"): r/SuicideWatch posts from SDCNL's training set. Negatives
(label 0): r/depression posts from the same set, and everyday emotional tweets (dair-ai
emotion, train split), so sadness alone is not taught as crisis. Posts are cut into the
title and the first two sentences, closer to chat messages than whole posts. Only training
splits are used; SDCNL's testing set stays for evaluation. Author and URL columns are
dropped. The output is derived data: it lives under runs/ and is never committed.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def snippets(title: str, body: str) -> list[str]:
    out = [title.strip()] if title and len(title.split()) >= 3 else []
    sentences = [s for s in SENTENCE.split(body or "") if s.strip()]
    if sentences:
        out.append(" ".join(sentences[:2]).strip()[:400])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/data/crisis.csv"))
    parser.add_argument("--tweets", type=int, default=3000, help="everyday negatives")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rows: list[tuple[str, int, str]] = []
    with (SHARED / "sdcnl_reddit_depression_vs_suicidewatch" / "training-set.csv").open() as f:
        for post in csv.DictReader(f):
            label = int(float(post["is_suicide"]))
            for text in snippets(post["title"], post["selftext"]):
                rows.append((text, label, "sdcnl"))
    tweets = [line.rsplit(";", 1)[0] for line in
              (SHARED / "dair_emotion" / "train.txt").read_text().splitlines() if ";" in line]
    random.Random(args.seed).shuffle(tweets)
    rows += [(t, 0, "dair_emotion") for t in tweets[: args.tweets]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "source"])
        writer.writerows(rows)
    positives = sum(label for _, label, _ in rows)
    print(f"wrote {len(rows)} rows ({positives} crisis) to {args.out}")


if __name__ == "__main__":
    main()
