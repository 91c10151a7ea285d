"""Counseling chat data: rows to conversations to token ids with assistant-only labels.

Each conversation is rendered once with the model's own chat template. The character spans
of the assistant turns (their text and the end-of-turn token, so the model learns to stop)
are found by rendering growing prefixes of the conversation; tokens whose characters fall
inside those spans get labels, all others get -100 and add nothing to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from mindwell.errors import MindwellError
from mindwell.inference.templates import ChatTemplate

IGNORE_INDEX = -100


def row_to_messages(row: dict, prompt_columns: list[str], response_column: str) -> list[dict]:
    """A single-turn table row (e.g. counsel-chat's title + text -> answer) as a chat."""
    parts = [str(row[c]).strip() for c in prompt_columns if row.get(c) not in (None, "")]
    return [
        {"role": "user", "content": "\n\n".join(parts)},
        {"role": "assistant", "content": str(row[response_column] or "").strip()},
    ]


def normalise_conversation(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """Make a conversation a template can render: system first, then alternating turns
    starting with the user. Some public dialogue sets open with the counselor; such leading
    assistant turns have nothing to respond to and are dropped, and consecutive turns of one
    role are joined."""
    system = [m for m in messages if m.get("role") == "system"]
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue
        if role not in ("user", "assistant"):
            raise MindwellError(f"Unknown role '{role}' in a conversation.",
                                "Roles must be system, user or assistant.")
        content = str(message.get("content") or "").strip()
        if not turns and role == "assistant":
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + content
        else:
            turns.append({"role": role, "content": content})
    head = system[:1] or ([{"role": "system", "content": system_prompt}] if system_prompt else [])
    return [*head, *turns]


def cut_answers(conversations: list[list[dict]], limit: int | None
                ) -> tuple[list[list[dict]], int, int]:
    """Every assistant turn cut after ``limit`` sentences (None: unchanged), with how many
    were cut and how many there are. A long essay answer cut at a sentence end still ends
    with the end-of-turn token, so the model learns to stop where the cut is."""
    from mindwell.counselor.corpus import cut_sentences

    answers = sum(m["role"] == "assistant" for c in conversations for m in c)
    if limit is None:
        return conversations, 0, answers
    cut, out = 0, []
    for messages in conversations:
        kept = []
        for message in messages:
            if message["role"] == "assistant":
                short = cut_sentences(message["content"], limit)
                cut += short != message["content"].strip()
                message = {**message, "content": short}
            kept.append(message)
        out.append(kept)
    return out, cut, answers


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def assistant_spans(template: ChatTemplate, messages: list[dict]) -> list[tuple[int, int]]:
    """Character spans of every assistant turn in ``template.render(messages)``."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(template.render(messages[:index], add_generation_prompt=True))
        end = len(template.render(messages[: index + 1], add_generation_prompt=False))
        spans.append((start, end))
    return spans


def tokenize_conversation(
    tokenizer, template: ChatTemplate, messages: list[dict], max_length: int
) -> Tokenized | None:
    """Token ids and labels; None when the conversation has no assistant turn."""
    if not any(m["role"] == "assistant" for m in messages):
        return None
    text = template.render(messages, add_generation_prompt=False)
    spans = assistant_spans(template, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    span_index = 0
    for token_id, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"],
                                      strict=True):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        inside = span_index < len(spans) and start >= spans[span_index][0] and end > start
        labels.append(token_id if inside else IGNORE_INDEX)
    ids = encoded["input_ids"]
    truncated = len(ids) > max_length
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None  # the answer starts beyond max_length: nothing to learn from
    return Tokenized(ids, labels, truncated)
