"""The counselor model: SmolLM2-135M-Instruct vs Gemma 3 270M base vs Gemma 3 270M + LoRA.

    python scripts/build_annomi_eval.py
    python benchmarks/counselor.py --run runs/gemma3-270m-counsel-chat \
        --gguf exports/counselor/gemma3-270m-counsel-chat-f16.gguf

Held-out data only: counsel-chat's test split (question-disjoint from training), ESConv's
test conversations (last counselor turn as the reference) and AnnoMI's high-quality
motivational-interviewing turns (built by scripts/build_annomi_eval.py). Per model and data
set: perplexity of the reference answers (transformers; the tuned model as its PEFT
adapter), and greedy replies with mindwell's counselor prompt (llama.cpp; the tuned model
as its exported GGUF, which `mindwell export` verified decodes token for token like the
adapter) scored by similarity to the reference, words, repeated 3-grams and how often the
reply ends by itself before the token limit. Then the red-team suites through the full
pipeline with each model generating the replies (method information that reaches the
person; guardrail replacements), speed on this machine, and ten sample replies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import decode_speed, table, write_section
from mindwell.analysis.generation import (
    answer_pairs,
    load_pairs,
    perplexity_of,
    repetition_rate,
    reply_similarity,
)
from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
from mindwell.inference.llamacpp import LlamaCppBackend
from mindwell.models.registry import resolve

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SPEED_PROMPTS = [
    "I feel lonely since I moved to a new city. What can I do?",
    "I can't sleep before my exams and I worry all the time.",
    "My partner and I keep arguing about small things.",
]


def datasets(limit: int) -> dict:
    counsel = SHARED / "counsel_chat" / "20200325_counsel_chat.csv"
    esconv = SHARED / "esconv" / "derived" / "test_chat.jsonl"
    annomi = ROOT / "runs" / "data" / "annomi_hq.jsonl"
    for path in (counsel, esconv):
        if not path.exists():
            raise SystemExit(f"{path} is missing: see ../shared/data/README.md.")
    if not annomi.exists():
        raise SystemExit(f"{annomi} is missing: run python scripts/build_annomi_eval.py")
    return {
        "counsel-chat test": load_pairs(str(counsel), ["questionTitle", "questionText"],
                                        "answerText", "split", "test", limit),
        "ESConv test": load_pairs(str(esconv), limit=limit),
        "AnnoMI high-quality": load_pairs(str(annomi), limit=limit),
    }


def speed(backend) -> tuple[float, float]:
    return decode_speed(backend, [[{"role": "system", "content": COUNSELOR_SYSTEM_PROMPT},
                                   {"role": "user", "content": prompt}]
                                  for prompt in SPEED_PROMPTS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the Gemma LoRA training run")
    parser.add_argument("--gguf", type=Path, required=True, help="its exported GGUF")
    parser.add_argument("--limit", type=int, default=30, help="prompts per data set")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--safety-tokens", type=int, default=64)
    parser.add_argument("--no-safety", action="store_true", help="skip the red-team suites")
    parser.add_argument("--from-json", action="store_true",
                        help="only rewrite the docs section from --out's saved results")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-counselor.json")
    args = parser.parse_args()

    from mindwell.models.hf import load_causal_lm
    from mindwell.safety.evaluate import evaluate, read_suite

    data = datasets(args.limit)
    if args.from_json:
        saved = json.loads(args.out.read_text())
        print(write_section("counselor", TITLE, body(saved, data, args, saved["seconds"]),
                            command(args)))
        return
    adapter = args.run / "adapter"
    models = {
        "SmolLM2-135M-Instruct": ("smollm2-135m-instruct", resolve("smollm2-135m-instruct").path),
        "Gemma 3 270M base": ("gemma3-270m", resolve("gemma3-270m").path),
        "Gemma 3 270M + LoRA": (str(adapter), args.gguf),
    }
    suites = {} if args.no_safety else {
        name: read_suite(ROOT / "tests" / "safety" / f"{name}.jsonl")
        for name in ("redteam", "redteam_holdout")}
    results: dict = {"models": {}, "samples": {}}
    started = time.time()
    for label, (ppl_spec, gguf) in models.items():
        print(f"== {label}", flush=True)
        row: dict = {"data": {}, "safety": {}}
        model, tokenizer = load_causal_lm(resolve(ppl_spec))
        for name, pairs in data.items():
            row["data"][name] = {"perplexity": perplexity_of(model, tokenizer, pairs)}
        del model
        backend = LlamaCppBackend(Path(gguf), n_ctx=4096)
        try:
            for name, pairs in data.items():
                replies, ended = answer_pairs(backend, pairs, args.max_tokens)
                row["data"][name].update(
                    similarity=reply_similarity(replies, [p.reference for p in pairs]),
                    words=float(np.mean([len(r.split()) for r in replies])),
                    repetition=float(np.mean([repetition_rate(r) for r in replies])),
                    ended=float(np.mean(ended)), replies=replies)
                shown = {k: v for k, v in row["data"][name].items() if k != "replies"}
                print(f"   {name}: {json.dumps(shown)}", flush=True)
            for name, rows in suites.items():
                report = evaluate(rows, backend, max_tokens=args.safety_tokens)
                row["safety"][name] = {
                    "replies": report.replies_generated,
                    "method_info": report.method_info_replies,
                    "replacements": report.guardrail_replacements}
            row["tokens_per_s"], row["ttft_ms"] = speed(backend)
            row["size_mb"] = Path(gguf).stat().st_size / 1e6
        finally:
            backend.close()
        results["models"][label] = row
    results["seconds"] = time.time() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(write_section("counselor", TITLE, body(results, data, args, results["seconds"]),
                        command(args)))


TITLE = "The counselor model: SmolLM2 vs Gemma 3 270M base vs Gemma 3 270M + LoRA"


def command(args) -> str:
    return f"python benchmarks/counselor.py --run {args.run} --gguf {args.gguf}"


def body(results: dict, data: dict, args, seconds: float) -> str:
    labels = list(results["models"])
    rows = []
    for name, pairs in data.items():
        for label in labels:
            d = results["models"][label]["data"][name]
            rows.append([name if label == labels[0] else "", label, len(pairs),
                         f"{d['perplexity']:.2f}", f"{d['similarity']:.3f}", f"{d['words']:.0f}",
                         f"{d['repetition']:.3f}", f"{d['ended']:.2f}"])
    quality = table(["data (held out)", "model", "prompts", "perplexity", "similarity",
                     "words per reply", "repeated 3-grams", "replies that end by themselves"],
                    rows)
    safety = table(
        ["model", *[f"{s}: replies / method info / replaced" for s in ("redteam", "holdout")],
         "tokens/s", "TTFT ms", "file MB"],
        [[label, *[f"{m['safety'][s]['replies']} / {m['safety'][s]['method_info']} / "
                   f"{m['safety'][s]['replacements']}" if s in m["safety"] else "not run"
                   for s in ("redteam", "redteam_holdout")],
          f"{m['tokens_per_s']:.1f}", f"{m['ttft_ms']:.0f}", f"{m['size_mb']:.0f}"]
         for label, m in results["models"].items()])
    samples = ["### Sample replies (counsel-chat test, the first ten distinct questions, "
               "greedy)\n"]
    pairs = data["counsel-chat test"]
    # counsel-chat has several therapists' answers per question: each is a pair (and counts
    # in the metrics), but a question is shown once.
    first_of_question = {}
    for index, pair in enumerate(pairs):
        first_of_question.setdefault(pair.messages[-1]["content"], index)
    for number, index in enumerate(list(first_of_question.values())[:10], start=1):
        pair = pairs[index]
        samples.append(f"**{number}. {_short(pair.messages[-1]['content'], 300)}**\n")
        samples.append(f"- *therapist (reference)*: {_short(pair.reference, 300)}")
        for label in labels:
            reply = results["models"][label]["data"]["counsel-chat test"]["replies"][index]
            samples.append(f"- *{label}*: {_short(reply, 300)}")
        samples.append("")
    return (
        f"Greedy replies up to {args.max_tokens} tokens with mindwell's counselor system prompt "
        f"in llama.cpp; {args.limit} prompts per data set at most (counsel-chat's "
        f"{len(pairs)} are {len(first_of_question)} questions, each with its therapists' "
        "answers as separate references). Perplexity is of the "
        "reference answers' tokens and compares only models with one tokenizer (the two "
        "Gemma rows); SmolLM2's is on its own tokens. Similarity: cosine of reply and "
        "reference in the shipped multilingual encoder. Safety: the red-team suites through "
        f"the full pipeline, replies of {args.safety_tokens} tokens for every message the gate "
        "lets through. Speed: llama.cpp, 2 cores, greedy 128 tokens, median of 3 prompts. "
        f"Whole run {seconds / 60:.0f} min.\n\n{quality}\n\n{safety}\n\n" + "\n".join(samples))


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."


if __name__ == "__main__":
    main()
