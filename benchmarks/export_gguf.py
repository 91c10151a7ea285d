"""Exported models: size, speed and quality of each GGUF, and merged vs adapter classifiers.

Part 1 reads an export directory written by `mindwell export` and measures, in one run,
every exported GGUF against the embedded Gemma 3 270M Q4_K_M base (the baseline: the file
mindwell ships): file size, decode tokens/s and time to first token on three counseling
prompts (greedy, 128 tokens, llama.cpp with mindwell's default threads), with the perplexity
change that verify.json recorded.

Part 2 compares a LoRA classifier run loaded as adapter-on-base (PEFT) with its export
(merged into one checkpoint): load time and ms per text on 64 texts. Skipped when the run
is absent.

    python benchmarks/export_gguf.py [--export exports/counsel-short]
        [--classifier runs/ko-emotion-gemma]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _report import decode_speed, table, write_section
from mindwell.inference.llamacpp import LlamaCppBackend
from mindwell.models.registry import resolve

PROMPTS = [
    "I feel lonely since I moved to a new city. What can I do?",
    "I can't sleep before my exams and I worry all the time.",
    "요즘 너무 우울하고 아무것도 하기 싫어요.",
]


def speed(path: Path) -> tuple[float, float]:
    """(median decode tokens/s, median time to first token in ms)."""
    backend = LlamaCppBackend(path, n_ctx=2048, cache_prompt=False)
    try:
        return decode_speed(backend, [[{"role": "user", "content": p}] for p in PROMPTS])
    finally:
        backend.close()


def gguf_section(export_dir: Path) -> str:
    verify = json.loads((export_dir / "verify.json").read_text())
    perplexity = next(c for c in verify["checks"] if c["name"] == "perplexity")["details"]["rows"]
    baseline = resolve("gemma3-270m").path
    rows = []
    rate, ttft = speed(baseline)
    rows.append(["embedded base gemma3-270m Q4_K_M (baseline)",
                 f"{baseline.stat().st_size / 1e6:.0f}", f"{rate:.1f}", f"{ttft:.0f}", "-"])
    for path in sorted(export_dir.glob("*.gguf"), key=lambda p: p.stat().st_size):
        if "-lora-" in path.name:
            continue
        qtype = path.stem.rsplit("-", 1)[-1]
        rate, ttft = speed(path)
        ppl = perplexity.get(qtype, {})
        rows.append([f"export {path.name}", f"{path.stat().st_size / 1e6:.0f}", f"{rate:.1f}",
                     f"{ttft:.0f}", f"{ppl.get('perplexity', '-')} "
                     f"({ppl.get('increase_pct', 0):+.2f} %)"])
    checks = ", ".join(f"{c['name']} {'pass' if c['ok'] else 'FAIL'}" for c in verify["checks"])
    return (
        table(["model", "MB", "tokens/s", "TTFT ms", "held-out perplexity (vs PyTorch)"], rows)
        + f"\n\nverify.json: {checks}. Perplexity of the merged PyTorch model: "
        f"{perplexity['pytorch']['perplexity']}."
    )


def classifier_section(run: Path) -> str:
    from mindwell.analysis.evaluate import export_classifier_files, load_classifier

    texts = [f"오늘 하루는 정말 {w} 하루였어요." for w in
             ("힘든", "기쁜", "평범한", "화나는")] * 16
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        export_classifier_files(run, Path(folder) / "classifier")
        for label, spec in (("LoRA adapter on base (PEFT)", str(run)),
                            ("exported, merged", str(Path(folder) / "classifier"))):
            started = time.perf_counter()
            classifier = load_classifier(spec)
            load = time.perf_counter() - started
            classifier.predict_proba(texts[:8])  # warm-up
            started = time.perf_counter()
            classifier.predict_proba(texts)
            per_text = 1000 * (time.perf_counter() - started) / len(texts)
            rows.append([label, f"{load:.1f}", f"{per_text:.1f}"])
    return table(["classifier", "load s", "ms per text (64 texts, batch 16)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=Path("exports/counsel-short"))
    parser.add_argument("--classifier", type=Path, default=Path("runs/ko-emotion-gemma"))
    args = parser.parse_args()
    body = gguf_section(args.export)
    if (args.classifier / "adapter" / "adapter_config.json").exists():
        body += "\n\n" + classifier_section(args.classifier)
    else:
        body += f"\n\n(No LoRA classifier run at {args.classifier}: part 2 skipped.)"
    print(write_section(
        "export_gguf", "Exported models: GGUF speed and quality; merged classifiers", body,
        "python benchmarks/export_gguf.py",
    ))


if __name__ == "__main__":
    main()
