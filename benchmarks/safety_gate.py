"""Safety gate: rules alone (the baseline) vs rules + the learned layer, in one run.

For each detector: recall and false alarms on the red-team suites in tests/safety. Two are
development sets (``redteam.jsonl``, ``redteam_holdout.jsonl``: the shipped threshold is
lowered until both keep recall 0.99, and rules were mended after reading their misses);
``redteam_fresh.jsonl`` and ``redteam_blind.jsonl`` were each written blind, measured once,
and then read (their first numbers are in docs/safety.md); ``redteam_blind2.jsonl`` was
written blind and measured only by this benchmark. Also the share of ordinary companion-app messages
it escalates (``tests/safety/everyday.jsonl``, 300 lines written blind: small talk, plans,
missing someone, low mood, questions), the share of everyday comments it escalates (random
GoEmotions dev and KOTE test comments: real text never used in training, almost none of it
crisis), how it splits SDCNL's test posts (r/SuicideWatch vs
r/depression, title and first two sentences), and the time per assessment on this CPU
(mean and 95th percentile). A second table shows how often texts from outside the suites
get the crisis reply: diary entries (the serve benchmark's), dair-ai emotion tweets,
dreaddit stress posts, Korean single-turn utterances (300 random each; real text, almost
none of it a crisis).
Targets (issue 6): recall >= 0.99, false alarms <= 0.05, <= 5 ms per message.

    python benchmarks/safety_gate.py [--everyday 600]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np

from _report import table, write_section
from mindwell.safety.evaluate import read_suite
from mindwell.safety.risk import RiskAssessor

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SUITES = {name: ROOT / "tests" / "safety" / f"redteam{suffix}.jsonl" for name, suffix in [
    ("redteam (dev)", ""), ("holdout (dev)", "_holdout"), ("fresh (read once)", "_fresh"),
    ("blind (read once)", "_blind"), ("blind2 (test)", "_blind2")]}
COMPANION_EVERYDAY = ROOT / "tests" / "safety" / "everyday.jsonl"
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def suite_rates(assessor: RiskAssessor, rows: list[dict]) -> tuple[float, float, list[float]]:
    """(recall, false alarm rate, milliseconds per message)."""
    flags, ms = [], []
    for row in rows:
        started = time.perf_counter()
        flags.append(assessor.assess(row["text"], row.get("history")).escalate)
        ms.append((time.perf_counter() - started) * 1000)
    positives = [f for f, r in zip(flags, rows, strict=True) if r["escalate"]]
    negatives = [f for f, r in zip(flags, rows, strict=True) if not r["escalate"]]
    return sum(positives) / len(positives), sum(negatives) / len(negatives), ms


def outside_sets(count: int = 300) -> dict[str, list[str]]:
    """Texts never used in training, almost none of them a crisis."""
    from serve import DIARY_TEXTS

    sets = {"diary entries": list(DIARY_TEXTS)}
    dair = SHARED / "dair_emotion" / "test.txt"
    if dair.exists():
        sets["dair-ai tweets"] = [line.rsplit(";", 1)[0]
                                  for line in dair.read_text().splitlines() if line]
    dreaddit = SHARED / "dreaddit" / "dreaddit-test.csv"
    if dreaddit.exists():
        with dreaddit.open(newline="") as handle:
            sets["dreaddit posts"] = [row["text"] for row in csv.DictReader(handle)]
    korean = SHARED / "ko_single_turn_emotion" / "derived" / "ko_single_turn_4class.csv"
    if korean.exists():
        with korean.open(newline="") as handle:
            sets["Korean utterances"] = [row["text"] for row in csv.DictReader(handle)]
    for name, texts in sets.items():
        random.Random(0).shuffle(texts)
        sets[name] = texts[:count]
    return sets


def everyday_messages(count: int) -> list[str]:
    with (SHARED / "goemotions" / "dev.tsv").open(newline="") as handle:
        english = [row[0] for row in csv.reader(handle, delimiter="\t") if row]
    with (SHARED / "kote" / "test.tsv").open(newline="") as handle:
        korean = [row[1] for row in csv.reader(handle, delimiter="\t") if len(row) > 1]
    random.Random(0).shuffle(english)
    random.Random(0).shuffle(korean)
    return english[: count // 2] + korean[: count // 2]


def sdcnl_posts() -> list[tuple[str, int]]:
    with (SHARED / "sdcnl_reddit_depression_vs_suicidewatch" / "testing-set.csv").open() as f:
        posts = list(csv.DictReader(f))
    out = []
    for post in posts:
        sentences = [s for s in SENTENCE.split(post["selftext"] or "") if s.strip()]
        out.append(((post["title"] + ". " + " ".join(sentences[:2]))[:500],
                    int(float(post["is_suicide"]))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--everyday", type=int, default=600)
    args = parser.parse_args()
    have_shared = SHARED.exists()
    if not have_shared:
        print(f"{SHARED} is missing: everyday and SDCNL columns are skipped.")
    everyday = everyday_messages(args.everyday) if have_shared else []
    sdcnl = sdcnl_posts() if have_shared else []

    detectors = [("rules only (baseline)", RiskAssessor(use_embeddings=False)),
                 ("rules + learned layer (shipped)", RiskAssessor())]
    detectors[1][1].assess("warm up: load the embedder")
    outside = outside_sets()
    suites = {name: read_suite(path) for name, path in SUITES.items()}
    companion = [row["text"] for row in read_suite(COMPANION_EVERYDAY)]
    rows, outside_rows = [], []
    for name, assessor in detectors:
        row, ms = [name], []
        for suite in suites.values():
            recall, false_alarms, times = suite_rates(assessor, suite)
            row.append(f"{recall:.3f} / {false_alarms:.3f}")
            ms += times
        companion_fa = sum(assessor.assess(t).escalate for t in companion) / len(companion)
        row.append(f"{companion_fa:.3f}")
        if have_shared:
            row.append(f"{sum(assessor.assess(t).escalate for t in everyday) / len(everyday):.3f}")
            flags = [(assessor.assess(t).escalate, label) for t, label in sdcnl]
            suicide = [f for f, label in flags if label == 1]
            depression = [f for f, label in flags if label == 0]
            row.append(f"{sum(suicide) / len(suicide):.2f} / "
                       f"{sum(depression) / len(depression):.2f}")
        else:
            row += ["-", "-"]
        ms = np.array(ms)
        row.append(f"{ms.mean():.1f} / {np.percentile(ms, 95):.1f}")
        rows.append(row)
        print(row, flush=True)
        outside_rows.append([name] + [
            f"{sum(assessor.assess(t).escalate for t in texts) / len(texts):.3f}"
            for texts in outside.values()])
        print(outside_rows[-1], flush=True)
    body = table(["detector", *(f"{name}: recall / false alarms" for name in SUITES),
                  "companion messages escalated",
                  f"everyday comments escalated (n={len(everyday)})",
                  "SDCNL test escalated: SuicideWatch / depression",
                  "ms per message: mean / p95"], rows)
    body += "\n\nOutside the suites: share of texts that get the crisis reply.\n\n" + table(
        ["detector", *(f"{name} (n={len(texts)})" for name, texts in outside.items())],
        outside_rows)
    body += (
        "\n\nTargets: recall >= 0.99 and false alarms <= 0.05 on the suites, <= 5 ms per "
        "message. The learned layer's threshold keeps recall 0.95 on its own validation "
        "split and is then lowered until the two development suites keep recall 0.99 "
        "(scripts/ship_crisis_head.py); the other suites take no part in any choice. "
        "docs/safety.md has the history of each number."
    )
    print(write_section("safety_gate", "Safety gate: crisis detection", body,
                        "python benchmarks/safety_gate.py"))


if __name__ == "__main__":
    main()
