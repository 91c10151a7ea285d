"""Round-trip checks: does the exported GGUF answer like the trained PyTorch model?

Each check targets one way a fine-tuned model breaks after export:

- tokenizer: llama.cpp's tokenizer (built from the GGUF) and the trained tokenizer give the
  same ids on 251 fixed strings (English, Korean, emoji, code, odd whitespace).
- chat_template: the prompt llama.cpp builds from the GGUF's template is the string the model
  was trained on, and tokenizes to the same ids, for conversations with and without a system
  prompt.
- bos: every prompt path (llama.cpp's template, mindwell's own rendering, the Ollama
  Modelfile) starts with exactly one BOS token.
- stop_tokens: the GGUF marks the template's end-of-turn token as end of generation, and the
  Modelfile stops on it.
- generation: greedy replies from PyTorch and the f16 GGUF agree token for token (agreement
  reported on the first 32 tokens), stop token included, so llama.cpp ends each reply where
  PyTorch does with no stop strings given. A divergence passes only where PyTorch's two
  candidate logits are closer than TIE_LOGIT_GAP (a tie that f16 arithmetic may flip).
- lora: the LoRA GGUF applied to the base (as llama.cpp's ``--lora`` does) decodes like the
  merged file.
- finetune: every file (each quantization, and the LoRA GGUF on its base) still carries
  the fine-tune, judged against the trained PyTorch model *and* the untuned base. Both
  PyTorch models answer the generation prompts greedily; every model (each file with its
  weights as stored) gives a log-probability to every token of both reply sets. The
  fine-tune is the change of that vector from the base to the trained model; a file's
  share kept is the projection of its own change onto it (0 % = the base, 100 % = the
  trained model). Quantization noise is spread over all tokens and mostly orthogonal to
  the fine-tune; a fine-tune rounded away projects to 0. Below KEPT_FAIL the check fails,
  below KEPT_WARN it warns, with the remedy. Greedy agreement of each file (llama.cpp)
  with either model is reported beside it.
- perplexity: held-out text through every exported file (weights dequantized exactly as
  llama.cpp stores them) against the PyTorch model; f16 must match, quantizations report
  their increase.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mindwell.export.samples import (
    CONVERSATIONS,
    GENERATION_PROMPTS,
    HELDOUT_TEXT,
    tokenizer_sample,
)
from mindwell.inference.templates import ChatTemplate

COMPARE_TOKENS = 32
# A divergence where PyTorch's top two logits are closer than this is a tie that f16
# rounding may legitimately flip, not an export bug.
TIE_LOGIT_GAP = 0.05
# f16 weights should change perplexity by well under 1 %; more means a conversion bug.
F16_PPL_TOLERANCE = 0.01
# Share of the fine-tune (see finetune above) a file must keep: below KEPT_FAIL it answers
# like the untuned base and fails; below KEPT_WARN it passes with a warning.
KEPT_FAIL = 0.5
KEPT_WARN = 0.8
# A fine-tune that moves the reply tokens' log-probabilities by less than this (nats, RMS)
# changed too little to tell whether a file kept it.
MIN_CHANGE = 0.01
FINETUNE_TOKENS = COMPARE_TOKENS
WHY_LOST = ("re-quantizing rounds small fine-tune deltas back onto the grid of a base that "
            "was itself quantized")


def remedy(rows: dict[str, dict]) -> str:
    """What to do instead, in order of preference, with what this export measured."""
    def measured(name: str) -> str:
        row = rows.get(name)
        return f" (it keeps {row['kept']:.0%} here)" if row and row["kept"] is not None else ""

    steps = ["ship the LoRA GGUF on the base instead (llama.cpp --lora, or an Ollama ADAPTER "
             f"line){measured('lora on base')}"]
    q8 = rows.get("q8_0")
    if q8 is None or q8["kept"] is None or q8["kept"] >= KEPT_WARN:
        steps.append(f"export q8_0 (--quant q8_0){measured('q8_0')}")
    steps.append("train from an unquantized base where one is available")
    note = (f"; q8_0 keeps only {q8['kept']:.0%} here" if q8 and q8["kept"] is not None
            and q8["kept"] < KEPT_WARN else "")
    return f"{', '.join(steps[:-1])}, or {steps[-1]}{note}: {WHY_LOST}"


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    details: dict = field(default_factory=dict)
    warn: bool = False  # passed, but with something to act on (in the summary)


@dataclass
class VerifyReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def _first_difference(a: list[int], b: list[int]) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def check_tokenizer(backend, tokenizer) -> Check:
    samples = tokenizer_sample()
    mismatches = []
    for text in samples:
        expected = tokenizer(text)["input_ids"]
        got = backend.tokenize(text, add_special=True)
        if expected != got:
            at = _first_difference(expected, got)
            mismatches.append({"text": text, "trained": expected[at:at + 6],
                               "gguf": got[at:at + 6], "at": at})
    ok = not mismatches
    summary = (f"{len(samples)}/{len(samples)} strings give identical ids" if ok else
               f"{len(mismatches)}/{len(samples)} strings differ, e.g. {mismatches[0]['text']!r}")
    return Check("tokenizer", ok, summary, {"strings": len(samples), "mismatches": mismatches[:10]})


def check_chat_template(backend, tokenizer, template: ChatTemplate) -> Check:
    problems = []
    for conversation in CONVERSATIONS:
        expected = template.render(conversation, add_generation_prompt=True, with_bos=False)
        built = backend.apply_gguf_template(conversation)
        expected_ids = tokenizer(
            template.render(conversation, add_generation_prompt=True, with_bos=True),
            add_special_tokens=False,
        )["input_ids"]
        built_ids = backend.tokenize(built, add_special=True)
        if built != expected or built_ids != expected_ids:
            problems.append({"conversation": conversation, "expected": expected, "gguf": built,
                             "ids_equal": built_ids == expected_ids})
    ok = not problems
    summary = (f"{len(CONVERSATIONS)} conversations format identically" if ok else
               f"{len(problems)}/{len(CONVERSATIONS)} conversations format differently; "
               f"expected {problems[0]['expected'][:60]!r}, llama.cpp built "
               f"{problems[0]['gguf'][:60]!r}")
    return Check("chat_template", ok, summary, {"problems": problems[:3]})


def check_bos(backend, tokenizer, modelfile_template: str) -> Check:
    bos_id = tokenizer.bos_token_id
    bos_text = tokenizer.bos_token or ""
    conversation = CONVERSATIONS[1]
    paths = {
        "llama.cpp template": backend.tokenize(backend.apply_gguf_template(conversation)),
        "mindwell prompt": backend.tokenize(backend.render(conversation)),
    }
    problems = []
    for name, ids in paths.items():
        count = 0
        while count < len(ids) and ids[count] == bos_id:
            count += 1
        if count != 1:
            problems.append(f"{name} starts with {count} BOS tokens")
    if bos_text and bos_text in modelfile_template:
        problems.append(f"the Modelfile TEMPLATE writes {bos_text} although Ollama adds it")
    ok = not problems
    return Check("bos", ok, "one BOS on every prompt path" if ok else "; ".join(problems),
                 {"bos_id": bos_id, "paths": [*list(paths), "Modelfile"]})


def check_stop_tokens(gguf_path: Path, tokenizer, template: ChatTemplate,
                      modelfile_stops: list[str]) -> Check:
    from mindwell.models.gguf_header import array_string, read_metadata

    # The header reader, not gguf.GGUFReader, which parses Gemma's whole vocabulary (~12 s).
    meta = read_metadata(Path(gguf_path))
    stop_text = template.stop[0]
    stop_id = tokenizer.convert_tokens_to_ids(stop_text)
    declared = {key: meta[key] for key in
                ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id") if key in meta}
    problems = []
    if stop_id not in declared.values():
        tokens = meta["tokenizer.ggml.tokens"]
        shown = {k.split(".")[-1]: f"{array_string(gguf_path, tokens, v)!r} ({v})"
                 for k, v in declared.items()}
        problems.append(f"the template ends turns with {stop_text!r} ({stop_id}) but the GGUF "
                        f"declares {shown}")
    if stop_text not in modelfile_stops:
        problems.append(f"the Modelfile does not stop on {stop_text!r}")
    ok = not problems
    return Check("stop_tokens", ok,
                 f"{stop_text!r} ({stop_id}) ends generation in the GGUF and the Modelfile"
                 if ok else "; ".join(problems), {"declared": declared, "stop_id": stop_id})


def check_generation(backend, model, tokenizer, template: ChatTemplate,
                     max_tokens: int = 256) -> Check:
    import torch

    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in template.stop_strings]
    stop_ids = [i for i in stop_ids if isinstance(i, int) and i >= 0]
    rows = []
    for prompt in GENERATION_PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        ids = tokenizer(template.render(messages, with_bos=True), add_special_tokens=False,
                        return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=max_tokens, do_sample=False, eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id, output_scores=True,
                return_dict_in_generate=True, repetition_penalty=1.0,
                temperature=None, top_p=None, top_k=None,
            )
        # Both sequences keep their final stop token, so "ends where PyTorch ends" is part
        # of the token-for-token comparison.
        reference = out.sequences[0, ids.shape[1]:].tolist()
        ref_stopped = bool(reference) and reference[-1] in stop_ids
        got, finish = backend.greedy_tokens(backend.render(messages), max_tokens)
        at = _first_difference(reference, got)
        identical = at == len(reference) == len(got)
        gap = None
        if not identical and at < len(reference) and at < len(got):
            scores = out.scores[at][0]
            gap = float(abs(scores[reference[at]] - scores[got[at]]))
        tie = gap is not None and gap < TIE_LOGIT_GAP
        window = min(COMPARE_TOKENS, len(reference))
        rows.append({
            "prompt": prompt, "agreement": round(min(at, window) / window, 3) if window else 1.0,
            "compared": window, "first_difference": None if identical else at,
            "logit_gap_at_difference": None if gap is None else round(gap, 4),
            "pytorch_tokens": len(reference), "pytorch_stopped": ref_stopped,
            "llama_tokens": len(got), "llama_stop_type": finish,
            "ok": identical or tie,
        })
    ok = all(row["ok"] for row in rows)
    mean = sum(row["agreement"] for row in rows) / len(rows)
    stopped = sum(row["pytorch_stopped"] for row in rows)
    summary = (f"greedy agreement {mean:.0%} over the first {COMPARE_TOKENS} tokens of "
               f"{len(rows)} replies; {stopped}/{len(rows)} end on the stop token before "
               f"{max_tokens} tokens")
    if not ok:
        bad = next(row for row in rows if not row["ok"])
        summary += (f"; {bad['prompt']!r} differs at token {bad['first_difference']} (PyTorch "
                    f"{bad['pytorch_tokens']} tokens, stopped={bad['pytorch_stopped']}; "
                    f"llama.cpp {bad['llama_tokens']}, {bad['llama_stop_type']}; logit gap "
                    f"{bad['logit_gap_at_difference']})")
    return Check("generation", ok, summary,
                 {"mean_agreement": round(mean, 3), "ended_on_stop": stopped, "rows": rows})


def check_lora(merged_backend, adapted_backend, max_tokens: int = 64) -> Check:
    """The LoRA GGUF on the base GGUF decodes like the merged file (greedy, llama.cpp both)."""
    rows = []
    for prompt in GENERATION_PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        merged, _ = merged_backend.greedy_tokens(merged_backend.render(messages), max_tokens)
        adapted, _ = adapted_backend.greedy_tokens(adapted_backend.render(messages), max_tokens)
        at = _first_difference(merged, adapted)
        window = min(COMPARE_TOKENS, len(merged)) or 1
        rows.append({"prompt": prompt, "agreement": round(min(at, window) / window, 3),
                     "first_difference": None if merged == adapted else at})
    mean = sum(row["agreement"] for row in rows) / len(rows)
    # Base + adapter adds the low-rank product at run time instead of baking it into f16
    # weights, so late ties may flip; the first 32 tokens must agree on average.
    ok = mean >= 0.9
    return Check("lora", ok, f"base + LoRA GGUF vs merged: greedy agreement {mean:.0%} over "
                 f"the first {COMPARE_TOKENS} tokens of {len(rows)} replies",
                 {"mean_agreement": round(mean, 3), "rows": rows})


@dataclass
class Probe:
    """The generation prompts as token ids, and the greedy replies of the trained model and
    of the untuned base to each (the first FINETUNE_TOKENS tokens)."""

    prompts: list[list[int]]
    trained: list[list[int]]
    base: list[list[int]]

    def differing(self) -> list[int]:
        """Prompts where the two models answer differently."""
        return [i for i, (t, b) in enumerate(zip(self.trained, self.base, strict=True))
                if t != b]


def greedy_replies(model, tokenizer, template: ChatTemplate,
                   max_tokens: int = FINETUNE_TOKENS) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, greedy reply ids) for every generation prompt, stop token included."""
    import torch

    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in template.stop_strings]
    stop_ids = [i for i in stop_ids if isinstance(i, int) and i >= 0]
    prompts, replies = [], []
    for prompt in GENERATION_PROMPTS:
        ids = tokenizer(template.render([{"role": "user", "content": prompt}], with_bos=True),
                        add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False,
                                 eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
                                 repetition_penalty=1.0, temperature=None, top_p=None,
                                 top_k=None)
        prompts.append(ids[0].tolist())
        replies.append(out[0, ids.shape[1]:].tolist())
    return prompts, replies


def reply_logprobs(model, probe: Probe):
    """The log-probability ``model`` gives every token of both reply sets (the trained
    model's replies, then the base's), each after its prompt: one vector per model."""
    import numpy as np
    import torch

    values = []
    for replies in (probe.trained, probe.base):
        for prompt, reply in zip(probe.prompts, replies, strict=True):
            if not reply:
                continue
            with torch.no_grad():
                logits = model(torch.tensor([prompt + reply])).logits[0, len(prompt) - 1:-1]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            values.append(logprobs.gather(1, torch.tensor(reply)[:, None])[:, 0].numpy())
    return np.concatenate(values) if values else np.zeros(0, dtype=np.float32)


def _agreement(reference: list[int], got: list[int]) -> float:
    window = min(COMPARE_TOKENS, len(reference))
    return min(_first_difference(reference, got), window) / window if window else 1.0


@dataclass
class FileBehaviour:
    """How one exported file (or the LoRA GGUF on its base) behaves on the probe."""

    name: str
    logprobs: object  # reply_logprobs with the file's weights as stored
    replies: list[list[int]]  # llama.cpp's greedy replies to the generation prompts


def finetune_kept(trained, base, file) -> float:
    """Where ``file``'s reply log-probabilities lie on the line from the base's (0) to the
    trained model's (1): the projection of its change from the base onto the fine-tune's
    change. Quantization noise is spread over every token and mostly orthogonal to the
    fine-tune, so it adds little; a fine-tune rounded away projects to 0."""
    import numpy as np

    change = np.asarray(trained, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    moved = np.asarray(file, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    return float(moved @ change / (change @ change))


def check_finetune(probe: Probe, trained, base, files: list[FileBehaviour]) -> Check:
    """Does every file still carry the fine-tune, or has it fallen back to the base?"""
    import numpy as np

    change = float(np.sqrt(np.mean((np.asarray(trained) - np.asarray(base)) ** 2))) if len(
        trained) else 0.0
    which = probe.differing()
    rows = {}
    for item in files:
        rows[item.name] = {
            "kept": round(finetune_kept(trained, base, item.logprobs), 3) if change else None,
            "agreement_with_trained": round(sum(_agreement(t, r) for t, r in zip(
                probe.trained, item.replies, strict=True)) / len(item.replies), 3),
            "agreement_with_base": round(sum(_agreement(b, r) for b, r in zip(
                probe.base, item.replies, strict=True)) / len(item.replies), 3),
            "replies_equal_to_base": sum(r == b for r, b in zip(item.replies, probe.base,
                                                                 strict=True)),
        }
    details = {"finetune_change_rms": round(change, 4), "tokens_scored": len(trained),
               "prompts_that_differ": len(which), "prompts": len(probe.prompts),
               "tokens": FINETUNE_TOKENS, "files": rows}
    if change < MIN_CHANGE:
        return Check("finetune", True, (
            f"the fine-tune changed too little to measure (reply-token log-probabilities "
            f"moved {change:.4f} nats RMS from the base's; the trained model and the base "
            f"answer {len(probe.prompts) - len(which)}/{len(probe.prompts)} prompts alike): "
            "nothing a file could lose"), details, warn=True)
    lost = [name for name, row in rows.items() if row["kept"] < KEPT_FAIL]
    weak = [name for name, row in rows.items() if KEPT_FAIL <= row["kept"] < KEPT_WARN]
    shown = ", ".join(f"{name} {row['kept']:.0%}" for name, row in rows.items())
    summary = (f"share of the fine-tune kept (0 % = the untuned base, 100 % = the trained "
               f"model; the fine-tune moved reply-token log-probabilities {change:.3f} nats "
               f"RMS): {shown}")
    if lost or weak:
        name = (lost or weak)[0]
        row = rows[name]
        keeping = [n for n, r in rows.items() if r["kept"] >= KEPT_WARN]
        summary = (f"{'LOST' if lost else 'WEAK'}: {name} keeps {row['kept']:.0%} of the "
                   f"fine-tune and answers like the untuned base (greedy agreement with the "
                   f"base {row['agreement_with_base']:.0%}, with the trained model "
                   f"{row['agreement_with_trained']:.0%}). Remedy: {remedy(rows)}"
                   + (f". These files keep it: {', '.join(keeping)}" if keeping else "")
                   + f". [{summary}]")
    return Check("finetune", not lost, summary, details, warn=bool(weak) and not lost)


def perplexity(model, tokenizer, texts: list[str]) -> float:
    import torch

    total, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = model(ids, labels=ids).loss.item()
        total += loss * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return math.exp(total / count)


def load_gguf_weights(path: Path, config=None):
    """A transformers model with the GGUF's weights dequantized (values exactly as stored),
    on the trained model's config so only the weights differ."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, config=config, dtype=torch.float32,
        attn_implementation="eager",
    )
    return model.eval()


def lora_gguf_deltas(lora: Path, model) -> dict[str, object]:
    """Weight name -> the update (B @ A * alpha / r) a LoRA GGUF adds to ``model``'s weight,
    read from the file itself, in the layout of ``model`` (transformers' names)."""
    import gguf
    import numpy as np
    import torch

    reader = gguf.GGUFReader(str(lora))
    alpha = float(reader.fields["adapter.lora.alpha"].contents())
    tensors = {t.name: t for t in reader.tensors}

    def array(name: str) -> np.ndarray:
        tensor = tensors[name]
        shape = [int(n) for n in reversed(tensor.shape.tolist())]
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        return np.asarray(values, dtype=np.float32).reshape(shape)

    names = {value: key for key, value in gguf.MODEL_ARCH_NAMES.items()}
    architecture = names[str(reader.fields["general.architecture"].contents())]
    config = model.config
    name_map = gguf.get_tensor_name_map(architecture, config.num_hidden_layers)
    deltas = {}
    for weight_name, weight in model.named_parameters():
        if weight.ndim != 2:
            continue
        gguf_name = name_map.get_name(weight_name, try_suffixes=(".weight",))
        if gguf_name is None or f"{gguf_name}.lora_a" not in tensors:
            continue
        a, b = array(f"{gguf_name}.lora_a"), array(f"{gguf_name}.lora_b")
        delta = torch.from_numpy(b @ a * (alpha / a.shape[0]))
        if architecture == gguf.MODEL_ARCH.LLAMA and gguf_name.endswith(
                ("attn_q.weight", "attn_k.weight")):
            # llama.cpp's converter permutes Llama's q and k rows for its rope layout.
            heads = config.num_attention_heads if gguf_name.endswith("attn_q.weight") else (
                config.num_key_value_heads or config.num_attention_heads)
            delta = delta.reshape(heads, delta.shape[0] // heads // 2, 2, -1).swapaxes(
                1, 2).reshape(delta.shape)
        deltas[weight_name] = delta
    if not deltas:
        raise ValueError(f"{lora.name} holds no LoRA tensor for this model's layers")
    return deltas


def load_lora_on_base(base_gguf: Path, lora: Path, config=None):
    """The base GGUF's weights as stored plus the LoRA GGUF's updates: what llama.cpp runs
    with ``--lora``."""
    import torch

    model = load_gguf_weights(base_gguf, config)
    deltas = lora_gguf_deltas(lora, model)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name in deltas:
                weight += deltas[name].to(weight.dtype)
    return model


def check_perplexity(model, tokenizer, files: dict[str, Path] | None = None,
                     texts: list[str] | None = None, measured: dict | None = None) -> Check:
    """Held-out perplexity of every file against PyTorch. ``measured`` (file name ->
    perplexity) is used where the files were loaded already."""
    texts = texts or HELDOUT_TEXT
    reference = perplexity(model, tokenizer, texts)
    rows = {"pytorch": {"perplexity": round(reference, 4), "increase_pct": 0.0}}
    values = dict(measured or {})
    for qtype, path in (files or {}).items():
        if qtype not in values:
            values[qtype] = perplexity(load_gguf_weights(path, model.config), tokenizer, texts)
    for qtype, value in values.items():
        rows[qtype] = {"perplexity": round(value, 4),
                       "increase_pct": round(100 * (value / reference - 1), 2)}
    problems = [q for q in ("f16", "f32", "bf16") if q in rows
                and abs(rows[q]["increase_pct"]) > 100 * F16_PPL_TOLERANCE]
    summary = ", ".join(f"{q} {r['perplexity']:.3f} ({r['increase_pct']:+.2f} %)"
                        for q, r in rows.items())
    if problems:
        summary = (f"{problems[0]} perplexity differs from PyTorch by more than "
                   f"{F16_PPL_TOLERANCE:.0%}: " + summary)
    return Check("perplexity", not problems, summary, {"texts": len(texts), "rows": rows})
