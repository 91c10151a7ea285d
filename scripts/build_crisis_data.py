"""Build the training table of the safety gate's learned layer.

    python scripts/build_crisis_data.py [--out runs/data/crisis.jsonl]

Rows: every line of ``configs/data/crisis_exemplars.jsonl`` (crisis messages and their
look-alikes, written for the project), every line of ``configs/data/crisis_pairs.jsonl``
(minimal pairs written for the project: nearly the same words, opposite labels, e.g. a
bridge question after a breakup and the same question for sunset photos; a conversation's
newest message is joined to its history the way the safety gate reads it, and the newest
message of a non-crisis conversation is also kept alone), plus everyday messages as
non-crisis, so that a
plain "hello" or a comment about a football match is not close to anything the classifier
knows as crisis: English Reddit comments from GoEmotions' train split (Apache-2.0) and Korean
online comments from KOTE's validation split (MIT). Only openly licensed sets are used
because the shipped classifier keeps the embeddings of its support vectors. Everyday
messages that mention death, dying, self-harm or means are left out rather than guessed.
Every row has a ``group``: both sides of a minimal pair (and a conversation's rows) share
one, so the recipe's validation split and the stacking folds never put one side in
training and its near-copy in validation. Texts are stored as the gate reads them, with
idioms rewritten (``without_idioms``). The output is derived data: it lives under runs/
and is never committed.

With ``--diary``, diary entries written for the text reader (``configs/data/diary/``: low
mood, depression without risk, grief, family quarrels, bad days) are added as normal,
since a depressed entry with no sign of risk gets a normal reply: the first reader read
family quarrels and low mood as crises (33 % of a blind diary set got a check-in or the
protocol). Entries with crisis words, a wish to disappear or thoughts of being a burden
are left out: those may rightly get a check-in. Measured and not shipped yet
(docs/safety.md): the shipped readers were trained without them.

Graded rows (``configs/data/safety_graded_{en,ko}.jsonl``: protocol, check-in or normal,
with abuse, violence and harm to others among the protocol lines) are added too. Every row
has two targets for the safety reader: ``risk`` (protocol or check-in: 1) and ``protocol``
(1, 0, or -1 where the older binary data does not say whether a crisis line is explicit or
ambiguous); ``label`` stays ``risk`` for the binary recipes.

With ``--pairs`` (measured, not in the shipped layers: docs/safety.md), minimal pairs of
quarrel vs abuse at home (``configs/data/safety_home_pairs_{en,ko}.jsonl``, same schema: the
same household with and without fear, violence or threats) are read the same way, so the
diary negatives' family quarrels do not teach the layers that trouble at home is never a
crisis; and diary-style pairs (``safety_diary_pairs_{en,ko}.jsonl``: the same errands as
putting affairs in order, or a passive wish inside a mundane day), so ordinary diary days
do not teach them that preparation and a tucked-away wish to be gone are normal.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

from mindwell.safety.risk import conversation_text
from mindwell.safety.rules import without_idioms

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CRISIS_WORDS = re.compile(
    r"\b(die|dying|dead|death|kill|suicid\w*|self.?harm|cut\w* (my|him|her)self|end it|"
    r"overdose|pills|hang\w*|jump\w*|bridge|gun|shoot|razor|blade|unalive|kms)\b"
    r"|죽|자살|자해|목숨|유서|뛰어내|수면제|약을|극단|사라지", re.I)
# Passive wishes and burden thoughts: a check-in may be right, so no diary entry with them
# is taught as normal.
PASSIVE_WORDS = re.compile(
    r"disappear|vanish|not (be )?here|without me|better off|burden|no point|never wake|"
    r"없으면|없어지|짐이|짐만|안 깼|깨지 않|의미 없|소용없|끝내", re.I)


def everyday(rows: list[str], count: int, seed: int) -> list[str]:
    kept = sorted({r.strip() for r in rows if len(r.split()) >= 2 and len(r) <= 300
                   and not CRISIS_WORDS.search(r)})
    random.Random(seed).shuffle(kept)
    return kept[:count]


def pair_rows(pairs: list[dict], seen: set[str]) -> list[dict]:
    """Training rows of the minimal pairs. A conversation counts as what the gate reads for
    it, history and newest message together; its newest message alone is kept as
    non-crisis only when the conversation is (alone, "how tall is the garage?" is not a
    crisis message even when the conversation is). Texts in ``seen`` are skipped."""
    rows = []
    for pair in pairs:
        texts = [pair["text"]]
        if pair.get("history"):
            texts = [conversation_text(pair["history"], pair["text"])]
            texts += [pair["text"]] if pair["label"] == 0 else []
        for text in map(without_idioms, texts):
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": pair["label"], "lang": pair["lang"],
                             "category": pair["category"], "batch": pair["batch"],
                             "source": "pairs", "group": f"pair-{pair['pair']}"})
    return rows


# Older binary rows whose category says which grade they are: a passive death wish is a
# check-in; these crisis categories are explicit (protocol). Others stay unknown (-1).
CHECK_IN_CATEGORIES = {"passive_death_wish"}
PROTOCOL_CATEGORIES = {"direct", "farewell", "self_harm", "plan_means_timing", "method_question",
                       "means_access", "indirect_method", "context_method", "subtle_plan",
                       "subtle_self_harm", "subtle_farewell", "timing", "method_vs_purpose",
                       "meds_and_doses", "injury_vs_selfharm", "goodbye_vs_farewell"}
GRADES = {"normal": (0, 0), "check_in": (1, 0), "protocol": (1, 1)}


def targets(row: dict) -> tuple[int, int]:
    if "grade" in row:
        return GRADES[row["grade"]]
    if not row["label"]:
        return 0, 0
    category = row.get("category")
    return 1, (0 if category in CHECK_IN_CATEGORIES else
               1 if category in PROTOCOL_CATEGORIES else -1)


def graded_rows(lines: list[dict], seen: set[str]) -> list[dict]:
    """Rows of the graded files, a conversation flattened as the gate reads it; its newest
    message alone is kept as normal only when the conversation is normal."""
    rows = []
    for number, line in enumerate(lines):
        texts = [line["text"]]
        if line.get("history"):
            texts = [conversation_text(line["history"], line["text"])]
            texts += [line["text"]] if line["grade"] == "normal" else []
        for text in map(without_idioms, texts):
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "grade": line["grade"], "lang": line["lang"],
                             "category": line["category"], "source": "graded",
                             "group": f"graded-{line['lang']}-{line.get('group', number)}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "data" / "crisis.jsonl")
    parser.add_argument("--english", type=int, default=2000, help="GoEmotions comments")
    parser.add_argument("--korean", type=int, default=2000, help="KOTE comments")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--diary", action="store_true",
                        help="add the project's diary entries as normal rows")
    parser.add_argument("--pairs", action="store_true",
                        help="add the home and diary minimal pairs (measured, not shipped)")
    args = parser.parse_args()

    lines = (ROOT / "configs" / "data" / "crisis_exemplars.jsonl").read_text().splitlines()
    unique: dict[str, dict] = {}  # rewriting idioms can make two texts one: the first wins
    for row in map(json.loads, filter(str.strip, lines)):
        text = without_idioms(row["text"])
        unique.setdefault(text, {**row, "text": text, "source": "exemplars"})
    rows = list(unique.values())
    lines = (ROOT / "configs" / "data" / "crisis_pairs.jsonl").read_text().splitlines()
    rows += pair_rows([json.loads(line) for line in lines if line.strip()],
                      {row["text"] for row in rows})
    data = ROOT / "configs" / "data"
    pairs = sorted(data.glob("safety_*_pairs_*.jsonl")) if args.pairs else []
    for path in [*sorted(data.glob("safety_graded_*.jsonl")), *pairs]:
        lines = path.read_text().splitlines()
        rows += graded_rows([json.loads(line) for line in lines if line.strip()],
                            {row["text"] for row in rows})
    goemotions = SHARED / "goemotions" / "train.tsv"
    kote = SHARED / "kote" / "val.tsv"
    for path in (goemotions, kote):
        if not path.exists():
            raise SystemExit(f"{path} is missing: see ../shared/data/README.md.")
    with goemotions.open(newline="") as handle:
        english = [row[0] for row in csv.reader(handle, delimiter="\t") if row]
    with kote.open(newline="") as handle:
        korean = [row[1] for row in csv.reader(handle, delimiter="\t") if len(row) > 1]
    for text in everyday(english, args.english, args.seed):
        rows.append({"text": text, "label": 0, "lang": "en", "category": "everyday",
                     "source": "goemotions"})
    for text in everyday(korean, args.korean, args.seed):
        rows.append({"text": text, "label": 0, "lang": "ko", "category": "everyday",
                     "source": "kote"})
    diaries = (ROOT / "configs" / "data" / "diary").glob("diary_*.jsonl") if args.diary else []
    for path in sorted(diaries):
        lang = path.stem.split("_")[-1]
        for entry in map(json.loads, filter(str.strip, path.read_text().splitlines())):
            text = without_idioms(entry["text"])
            if CRISIS_WORDS.search(text) or PASSIVE_WORDS.search(text):
                continue
            rows.append({"text": text, "label": 0, "lang": lang,
                         "category": f"diary_{entry['category']}", "source": "diary"})
    for number, row in enumerate(rows):
        row.setdefault("group", f"{row['source']}-{number}")
        row["risk"], row["protocol"] = targets(row)
        row["label"] = row["risk"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    crisis = sum(row["label"] for row in rows)
    print(f"wrote {len(rows)} rows ({crisis} crisis) to {args.out}")


if __name__ == "__main__":
    main()
