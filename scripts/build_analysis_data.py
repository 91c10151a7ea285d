"""Fixed train/validation/test splits for the text-analysis models, from ../shared/data.

    python scripts/build_analysis_data.py        # -> runs/data/*.csv (never committed)

- depression: the depression tweets and the Reddit depression set, each stratified
  80/10/10 (seed 42), the Reddit set also whole as a cross-dataset test, and both train
  (and dev) parts together for the shipped model;
- emotion EN: GoEmotions' own train/dev/test, grouped to Ekman's six emotions plus neutral,
  keeping comments with exactly one group (about 9 % have several);
- emotion KO: the Korean single-turn set mapped to 무감정/슬픔/기쁨/분노, stratified 80/10/10.
Each output has columns ``text,label``; the split seed and sizes are printed.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "runs" / "data"
SEED = 42


def write(name: str, rows: list[tuple[str, str]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"{name}: {len(rows)} rows")


def stratified_split(rows: list[tuple[str, str]], name: str) -> None:
    by_label: dict[str, list] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    train, dev, test = [], [], []
    for label in sorted(by_label):
        group = by_label[label]
        random.Random(SEED).shuffle(group)
        n_test = n_dev = len(group) // 10
        test += group[:n_test]
        dev += group[n_test:n_test + n_dev]
        train += group[n_test + n_dev:]
    for part, part_rows in (("train", train), ("dev", dev), ("test", test)):
        random.Random(SEED).shuffle(part_rows)
        write(f"{name}_{part}", part_rows)


def clean(text: str) -> str:
    return " ".join((text or "").split())


def main() -> None:
    with (SHARED / "depression_tweets" / "sentiment_tweets3.csv").open() as handle:
        tweets = [(clean(r["message to examine"]), r["label (depression result)"])
                  for r in csv.DictReader(handle)]
    tweets = [r for r in dict(tweets).items() if r[0]]  # duplicates keep one label
    stratified_split(tweets, "depression_tweets")
    path = SHARED / "reddit_depression_cleaned" / "depression_dataset_reddit_cleaned.csv"
    with path.open() as handle:
        reddit = [(clean(r["text"]), r["is_depressive"]) for r in csv.DictReader(handle)]
    reddit = [r for r in dict(reddit).items() if r[0]]
    write("depression_reddit_all", reddit)
    stratified_split(reddit, "depression_reddit")
    # The shipped model learns from both (train parts only), so it is not a tweet detector.
    for part in ("train", "dev"):
        with (OUT / f"depression_tweets_{part}.csv").open() as a, \
                (OUT / f"depression_reddit_{part}.csv").open() as b:
            both = [(r["text"], r["label"]) for f in (a, b) for r in csv.DictReader(f)]
        random.Random(SEED).shuffle(both)
        write(f"depression_both_{part}", both)

    labels = (SHARED / "goemotions" / "ekman" / "labels.txt").read_text().split()
    for part in ("train", "dev", "test"):
        with (SHARED / "goemotions" / "ekman" / f"{part}.tsv").open(newline="") as handle:
            rows = [(clean(r[0]), labels[int(r[1])]) for r in csv.reader(handle, delimiter="\t")
                    if r and "," not in r[1]]
        write(f"goemotions_ekman_{part}", rows)

    path = SHARED / "ko_single_turn_emotion" / "derived" / "ko_single_turn_4class.csv"
    with path.open() as handle:
        korean = [(clean(r["text"]), r["label4"]) for r in csv.DictReader(handle)]
    stratified_split([r for r in korean if r[0]], "ko_emotion")


if __name__ == "__main__":
    main()
