"""`mindwell eval generation`: chat models side by side on held-out counseling answers.

For every model, on the same (prompt, reference answer) pairs:
- perplexity of the reference answers given their prompts (answer tokens only, through
  transformers, so base vs fine-tuned is a like-for-like comparison of the same tokens);
- greedy replies to the prompts (with the counselor system prompt, as chat uses them),
  their semantic similarity to the reference answers (cosine of the embedded multilingual
  encoder), length in words and repetition (the share of repeated word 3-grams);
- a few sample replies side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindwell.errors import MindwellError


@dataclass
class Pair:
    messages: list[dict]  # the conversation up to the reference answer
    reference: str


@dataclass
class GenerationResult:
    model: str
    perplexity: float | None = None
    similarity: float | None = None
    words: float | None = None
    repetition: float | None = None
    replies: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {"model": self.model, "perplexity": self.perplexity,
                "similarity": self.similarity, "words": self.words,
                "repetition": self.repetition}


def load_pairs(data: str, prompt_columns: list[str] | None = None,
               response_column: str | None = None, split_column: str | None = None,
               split: str | None = None, limit: int | None = None,
               messages_column: str = "messages") -> list[Pair]:
    """(conversation so far, reference answer) pairs, optionally from one split.

    Single-turn rows (``prompt_columns`` -> ``response_column``, e.g. counsel-chat) give one
    pair each; multi-turn rows (``messages_column``) give their last assistant turn as the
    reference and the turns before it as the prompt.
    """
    from mindwell.train.data import load_table, require_columns
    from mindwell.train.sft import normalise_conversation, row_to_messages

    table = load_table(data)
    single_turn = bool(prompt_columns and response_column)
    needed = [*prompt_columns, response_column] if single_turn else [messages_column]
    require_columns(table, needed + ([split_column] if split_column else []), data)
    rows = [row for row in table if not split_column or str(row[split_column]) == split]
    if not rows:
        raise MindwellError(f"No rows in {data} with {split_column} = {split!r}.",
                            "Check --split-column and --split.")
    pairs = []
    for row in rows:
        if single_turn:
            messages = row_to_messages(row, prompt_columns, response_column)
        else:
            messages = normalise_conversation(row[messages_column] or [], None)
            while messages and messages[-1]["role"] != "assistant":
                messages = messages[:-1]
        if len(messages) >= 2 and messages[-2]["content"] and messages[-1]["content"]:
            pairs.append(Pair(messages[:-1], messages[-1]["content"]))
        if limit and len(pairs) >= limit:
            break
    if not pairs:
        raise MindwellError(f"{data} has no prompt with a reference answer to compare.",
                            "Single-turn data needs --prompt-column and --response-column.")
    return pairs


def perplexity(model_spec: str, pairs: list[Pair], max_length: int = 1024) -> float:
    """exp(mean negative log-likelihood) of the reference answers' tokens."""
    from mindwell.models.hf import load_causal_lm
    from mindwell.models.registry import resolve

    model, tokenizer = load_causal_lm(resolve(model_spec))
    return perplexity_of(model, tokenizer, pairs, max_length)


def perplexity_of(model, tokenizer, pairs: list[Pair], max_length: int = 1024) -> float:
    """``perplexity`` for a model already loaded (one load for several data sets)."""
    import torch

    from mindwell.inference.hf import template_for_tokenizer
    from mindwell.train.sft import IGNORE_INDEX, tokenize_conversation

    model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
    template = template_for_tokenizer(tokenizer, model_type, None)
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for pair in pairs:
            item = tokenize_conversation(
                tokenizer, template,
                [*pair.messages, {"role": "assistant", "content": pair.reference}], max_length)
            if item is None:
                continue
            ids = torch.tensor([item.input_ids], device=model.device)
            labels = torch.tensor([item.labels], device=model.device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            targets = labels[:, 1:]
            mask = targets != IGNORE_INDEX
            nll = torch.nn.functional.cross_entropy(
                logits[mask], targets[mask], reduction="sum")
            total_nll += float(nll)
            total_tokens += int(mask.sum())
    if not total_tokens:
        raise MindwellError("No reference answer tokens to score.",
                            "Check the data columns, or raise max_length.")
    return math.exp(total_nll / total_tokens)


def repetition_rate(text: str) -> float:
    """Share of word 3-grams that already occurred earlier in the same reply."""
    words = text.lower().split()
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def generate_replies(model_spec: str, pairs: list[Pair], max_tokens: int) -> list[str]:
    from mindwell.inference import load_backend

    with load_backend(model_spec) as backend:
        return answer_pairs(backend, pairs, max_tokens)[0]


def answer_pairs(backend, pairs: list[Pair], max_tokens: int) -> tuple[list[str], list[bool]]:
    """Greedy replies of an open backend with the counselor prompt, and for each whether it
    ended by itself (a stop token) rather than at ``max_tokens``."""
    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT

    replies, ended = [], []
    for pair in pairs:
        replies.append(backend.generate(reply_prompt(pair, COUNSELOR_SYSTEM_PROMPT),
                                        stream=False, max_tokens=max_tokens,
                                        temperature=0.0).strip())
        ended.append(backend.last_stats.finish_reason == "stop")
    return replies, ended


def reply_similarity(replies: list[str], references: list[str]) -> float | None:
    """Mean cosine of each non-empty reply and its reference in the shipped encoder."""
    from mindwell.models.embedder import embed_texts

    answered = [(r, ref) for r, ref in zip(replies, references, strict=True) if r]
    if not answered:
        return None
    a = embed_texts([r for r, _ in answered])
    b = embed_texts([ref for _, ref in answered])
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    return float(cosine.mean())


def reply_prompt(pair: Pair, system_prompt: str) -> list[dict]:
    """The conversation every compared model answers: mindwell's counselor prompt in place
    of the data set's own system message (ESConv brings one), so all models get the same
    instructions and a template that allows one system turn still renders."""
    return [{"role": "system", "content": system_prompt},
            *(m for m in pair.messages if m["role"] != "system")]


def evaluate_generation(model_spec: str, pairs: list[Pair], max_tokens: int = 128,
                        ppl: bool = True, generate: bool = True) -> GenerationResult:
    result = GenerationResult(model_spec)
    if ppl:
        result.perplexity = perplexity(model_spec, pairs)
    if generate:
        result.replies = generate_replies(model_spec, pairs, max_tokens)
        result.similarity = reply_similarity(result.replies, [p.reference for p in pairs])
        result.words = float(np.mean([len(r.split()) for r in result.replies]))
        result.repetition = float(np.mean([repetition_rate(r) for r in result.replies]))
    return result


def write_generation_report(results: list[GenerationResult], pairs: list[Pair], data: str,
                            out_dir: Path, samples: int = 5) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)

    def cell(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"# Generation evaluation\n\nData: `{data}` ({len(pairs)} prompts with reference "
             "answers). Perplexity: of the reference answers, per token (lower is better; "
             "comparable only between models with the same tokenizer, e.g. a base and its "
             "fine-tune). "
             "Similarity: "
             "cosine between a greedy reply and the reference answer (multilingual encoder). "
             "Repetition: share of repeated word 3-grams in a reply.\n",
             "| model | perplexity | similarity | words per reply | repetition |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.model} | {cell(r.perplexity, 2)} | {cell(r.similarity)} | "
              f"{cell(r.words, 1)} | {cell(r.repetition)} |" for r in results]
    with_replies = [r for r in results if r.replies]
    if with_replies:
        lines.append("\n## Sample replies\n")
        for index, pair in enumerate(pairs[:samples]):
            lines.append(f"**Prompt {index + 1}.** {pair.messages[-1]['content'][:500]}\n")
            lines.append(f"- *reference*: {pair.reference[:400]}")
            lines += [f"- *{r.model}*: {r.replies[index][:400]}" for r in with_replies]
            lines.append("")
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out_dir / "report.json").write_text(json.dumps(
        {"data": data, "prompts": len(pairs), "results": [r.row() for r in results],
         "replies": {r.model: r.replies for r in with_replies}}, indent=2, ensure_ascii=False))
    return report
