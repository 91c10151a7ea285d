"""Preference pairs for the counselor's `dpo` stage: the corpus reply chosen, the model's
own reply to the same conversation rejected.

    python scripts/build_preference_pairs.py [--model mindwell-counselor] [--per-split 400]

For each corpus conversation one counselor turn is picked at random (seed 0): the turns
before it are the prompt, the corpus reply is `chosen`, and what ``--model`` (by default the
shipped counselor, the policy the `dpo` stage starts from) answers there, with the chat's
own system prompt and sampling, is `rejected`. The judged harms of that model (invented
facts, false promises, advice that misses the person) are what it writes itself, so its
own replies are the natural negatives. Train conversations make the training pairs, `val`
ones the evaluation pairs; `test` stays held out. Writes ``runs/data/counsel_dpo_{train,
val}.jsonl`` (never committed: generated text) and appends as it goes, so a stopped run
resumes where it was. Rows whose reply is empty are skipped (nothing to prefer against).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "configs/data/counsel").glob("counsel_*.jsonl"))


def pick_turns(rows: list[dict], seed: int) -> list[dict]:
    """One (prompt, chosen) per conversation: a random counselor turn and what came before."""
    rng = random.Random(seed)
    picked = []
    for row in rows:
        messages = [m for m in row["messages"] if m["role"] != "system"]
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant" and i > 0
                 and messages[i - 1]["role"] == "user"]
        if not turns:
            continue
        turn = rng.choice(turns)
        picked.append({"id": f"{row['id']}#{turn}", "lang": row.get("lang"),
                       "split": row.get("split", "train"), "messages": messages[:turn],
                       "chosen": messages[turn]["content"]})
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="registry name or GGUF (default: the "
                        "default counselor)")
    parser.add_argument("--per-split", type=int, default=0,
                        help="at most this many training pairs (0: every conversation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/data")
    args = parser.parse_args()

    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
    from mindwell.counselor.corpus import read_corpus
    from mindwell.counselor.evaluate import Prompt, generate
    from mindwell.models.registry import DEFAULT_CHAT_MODEL

    model = args.model or DEFAULT_CHAT_MODEL
    picked = pick_turns(list(read_corpus(CORPUS)), args.seed)
    random.Random(args.seed).shuffle(picked)  # EN and KO mixed, so a cut keeps both
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        rows = [p for p in picked if p["split"] == split]
        if split == "train" and args.per_split:
            rows = rows[: args.per_split]
        path = args.out / f"counsel_dpo_{split}.jsonl"
        done = {json.loads(line)["id"] for line in path.read_text().splitlines()} \
            if path.exists() else set()
        todo = [p for p in rows if p["id"] not in done]
        print(f"{split}: {len(rows)} pairs, {len(done)} already written, {len(todo)} to "
              f"generate with {model}", flush=True)
        started = time.perf_counter()
        with path.open("a", encoding="utf-8") as handle:
            # In chunks, so each chunk's pairs are written before the next is generated.
            for first in range(0, len(todo), 10):
                chunk = todo[first:first + 10]
                replies = generate(model, [Prompt(p["id"], p["lang"], p["messages"])
                                           for p in chunk], COUNSELOR_SYSTEM_PROMPT,
                                   {"max_tokens": 160, "seed": args.seed})
                for pair, reply in zip(chunk, replies, strict=True):
                    if reply.text.strip():
                        handle.write(json.dumps({**pair, "rejected": reply.text,
                                                 "rejected_finish": reply.finish},
                                                ensure_ascii=False) + "\n")
                handle.flush()
                elapsed = time.perf_counter() - started
                print(f"  {first + len(chunk)}/{len(todo)} ({elapsed:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
