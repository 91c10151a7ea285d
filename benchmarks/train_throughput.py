"""Training throughput: mindwell's SFT path vs a plain TRL SFTTrainer, in one run.

Same model (the embedded Gemma 3 270M), same counsel-chat examples, same batch size and
optimizer steps, fp32 on the CPU. The baseline is TRL's SFTTrainer as most tutorials use it:
every sequence padded to max_length, loss on every token, full logits over the 262k-token
vocabulary, no activation checkpointing. mindwell pads each batch to its longest example,
puts the loss on answer tokens only, computes logits only there in chunks, checkpoints
activations, and has glibc return freed buffers to the system (mindwell.train.memory).
The packing row runs the same conversations with `packing: true`: best-fit rows of up to
max_length tokens, each conversation attending only to itself, for one epoch (as many steps
as the rows need, so every conversation is seen once, as in the other rows).
Each variant runs in its own process so peak memory (RSS) is its own.

Target: at least 1.5x the baseline's tokens/s at no more than 0.7x its peak memory.

    python benchmarks/train_throughput.py [--steps 6] [--batch-size 4] [--max-length 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "counsel_chat" / (
    "20200325_counsel_chat.csv")
SYSTEM = "You are a warm, careful counselor."


def examples(count: int) -> list[list[dict]]:
    """The first ``count`` training conversations of counsel-chat, in file order."""
    from mindwell.train.data import load_table
    from mindwell.train.sft import normalise_conversation, row_to_messages

    table = load_table(str(DATA))
    rows = [r for r in table if r["split"] == "train"][:count]
    return [normalise_conversation(row_to_messages(r, ["questionTitle", "questionText"],
                                                   "answerText"), SYSTEM) for r in rows]


def real_tokens(convs, max_length: int) -> int:
    from transformers import AutoTokenizer

    from mindwell.inference.templates import GEMMA
    from mindwell.models.hf import gguf_checkpoint_dir
    from mindwell.models.registry import resolve

    tokenizer = AutoTokenizer.from_pretrained(gguf_checkpoint_dir(resolve("gemma3-270m")))
    return sum(min(max_length, len(tokenizer(GEMMA.render(c, add_generation_prompt=False),
                                             add_special_tokens=False)["input_ids"]))
               for c in convs)


def timer():
    """A callback timing the training loop alone (not model loading or trainer setup)."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            Timer.seconds = time.perf_counter() - self.start

    return Timer()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mindwell(convs, args, workdir: Path, packing: bool = False) -> float:
    import json as _json

    from mindwell.train import load_recipe, train

    data = workdir / "chat.jsonl"
    data.write_text("".join(_json.dumps({"messages": c}) + "\n" for c in convs))
    recipe = load_recipe(None, {
        "task": "sft", "model": "gemma3-270m", "data": str(data), "output_dir": str(workdir),
        "validation_fraction": 0.0, "max_length": args.max_length,
        "batch_size": args.batch_size, "max_steps": -1 if packing else args.steps,
        "num_epochs": 1, "packing": packing,
        "gradient_checkpointing": True, "chunked_loss": True, "report_to": [],
        "save_steps": 10_000, "logging_steps": 1, "seed": 0,
    })
    clock = timer()
    train(recipe, callbacks=[clock])
    summary = _json.loads((workdir / "metrics.json").read_text())
    run_mindwell.seen = summary.get("train_tokens")  # real tokens the steps saw
    run_mindwell.steps = summary.get("global_step")
    run_mindwell.rows = summary.get("packed_rows")
    return clock.seconds


def run_mindwell_packed(convs, args, workdir: Path) -> float:
    seconds = run_mindwell(convs, args, workdir, packing=True)
    for key in ("seen", "steps", "rows"):
        setattr(run_mindwell_packed, key, getattr(run_mindwell, key))
    return seconds


def run_trl(convs, args, workdir: Path) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from mindwell.inference.templates import GEMMA_TEMPLATE
    from mindwell.models.hf import gguf_checkpoint_dir
    from mindwell.models.registry import resolve

    location = gguf_checkpoint_dir(resolve("gemma3-270m"))
    tokenizer = AutoTokenizer.from_pretrained(location)
    tokenizer.chat_template = GEMMA_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(location, attn_implementation="eager")
    from peft import LoraConfig

    config = SFTConfig(
        output_dir=str(workdir), max_length=args.max_length, per_device_train_batch_size=
        args.batch_size, max_steps=args.steps, learning_rate=2e-4, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, seed=0, bf16=False,
        dataset_num_proc=None,
    )
    # Fixed-length padding: every batch padded to max_length, as with padding="max_length".
    collator = DataCollatorForLanguageModeling(
        pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=args.max_length
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list([{"messages": c}
                                                                   for c in convs]),
        processing_class=tokenizer, data_collator=collator, callbacks=[clock := timer()],
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=[
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM"),
    )
    trainer.train()
    return clock.seconds


def child(args) -> None:
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    convs = examples(args.steps * args.batch_size)
    with tempfile.TemporaryDirectory() as workdir:
        runner = {"mindwell": run_mindwell, "packed": run_mindwell_packed,
                  "trl": run_trl}[args.variant]
        seconds = runner(convs, args, Path(workdir))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                      "tokens_seen": getattr(runner, "seen", None),
                      "steps": getattr(runner, "steps", None),
                      "rows": getattr(runner, "rows", None)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["mindwell", "packed", "trl"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    if not DATA.exists():
        print(f"counsel-chat not found at {DATA}; this benchmark needs ../shared/data.")
        return
    from _report import table, write_section
    from mindwell.models.hf import gguf_checkpoint_dir
    from mindwell.models.registry import resolve

    gguf_checkpoint_dir(resolve("gemma3-270m"))  # convert once, outside the timings
    tokens = real_tokens(examples(args.steps * args.batch_size), args.max_length)
    results = {}
    for variant in ("trl", "mindwell", "packed"):
        command = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                   "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        print(variant, results[variant], flush=True)
    base = results["trl"]
    rows = [["TRL SFTTrainer, fixed padding (baseline)", str(args.steps),
             f"{base['seconds']:.0f}", f"{tokens / base['seconds']:.0f}",
             f"{base['peak_rss_mb']:.0f}", "1.00", "1.00"]]
    ratios = {}
    conversations = args.steps * args.batch_size
    for variant, label in (("mindwell", "mindwell train"),
                           ("packed", "mindwell train, packing: true ({rows} rows for "
                                      f"{conversations} conversations)")):
        ours = results[variant]
        label = label.format(rows=ours.get("rows"))
        seen = ours.get("tokens_seen") or tokens  # counted by the run itself
        speed = (seen / ours["seconds"]) / (tokens / base["seconds"])
        memory = ours["peak_rss_mb"] / base["peak_rss_mb"]
        ratios[variant] = (speed, memory)
        rows.append([label, str(ours.get("steps") or args.steps), f"{ours['seconds']:.0f}",
                     f"{seen / ours['seconds']:.0f}", f"{ours['peak_rss_mb']:.0f}",
                     f"{speed:.2f}", f"{memory:.2f}"])
    speed, memory = max(ratios.values())
    verdict = "pass" if speed >= 1.5 and memory <= 0.7 else "FAIL"
    issue_target = ("met" if any(s >= 3 and m <= 0.5 for s, m in ratios.values())
                    else "not met")
    body = (
        f"Gemma 3 270M + LoRA r=16 on all projections, fp32, {args.threads} threads, "
        f"{args.steps} optimizer steps of {args.batch_size} counsel-chat conversations "
        f"(max length {args.max_length}; {tokens} real tokens in all). Seconds time the training "
        "loop only, not model loading.\n\n"
        + table(["run", "optimizer steps", "train seconds", "real tokens/s", "peak RSS MB",
                 "speed ratio", "memory ratio"], rows)
        + f"\n\nTarget >= 1.5x tokens/s at <= 0.7x memory: {verdict}. Issue 21's target "
        f">= 3x at <= 0.5x memory: {issue_target}."
    )
    print(write_section("train_throughput", "Training throughput", body,
                        "python benchmarks/train_throughput.py"))


if __name__ == "__main__":
    main()
