"""Held-out counseling turns from AnnoMI's high-quality motivational-interviewing sessions.

    python scripts/build_annomi_eval.py [--out runs/data/annomi_hq.jsonl] [--turns 6]

One conversation per high-quality transcript (110): a therapist reflection or question at
least four utterances in, after the client spoke, with the utterances before it as the
conversation (therapist -> assistant, client -> user). Which turn is picked is fixed by the
seed. AnnoMI states no licence, so it is for evaluation only (never training) and the
output lives under runs/, never committed. `mindwell eval generation --data` reads it.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANNOMI = ROOT.parent / "shared" / "data" / "annomi" / "AnnoMI-simple.csv"
ROLE = {"therapist": "assistant", "client": "user"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ANNOMI)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "data" / "annomi_hq.jsonl")
    parser.add_argument("--turns", type=int, default=6, help="utterances of context")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} is missing: see ../shared/data/README.md.")

    transcripts: dict[str, list[dict]] = defaultdict(list)
    with args.data.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["mi_quality"] == "high":
                transcripts[row["transcript_id"]].append(row)
    rng = random.Random(args.seed)
    written = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for transcript_id in sorted(transcripts, key=int):
            rows = sorted(transcripts[transcript_id], key=lambda r: int(r["utterance_id"]))
            candidates = [
                i for i, row in enumerate(rows)
                if i >= 4 and row["interlocutor"] == "therapist"
                and row["main_therapist_behaviour"] in ("reflection", "question")
                and rows[i - 1]["interlocutor"] == "client"
                and len(row["utterance_text"].split()) >= 8
            ]
            if not candidates:
                continue
            pick = rng.choice(candidates)
            context = rows[max(0, pick - args.turns):pick + 1]
            messages = [{"role": ROLE[r["interlocutor"]], "content": r["utterance_text"].strip()}
                        for r in context]
            out.write(json.dumps({"messages": messages, "transcript_id": transcript_id,
                                  "topic": rows[pick]["topic"],
                                  "behaviour": rows[pick]["main_therapist_behaviour"]},
                                 ensure_ascii=False) + "\n")
            written += 1
    print(f"wrote {written} conversations to {args.out}")


if __name__ == "__main__":
    main()
