"""Behaviour metrics during `sft`: what the model being trained says, not only its loss.

A falling validation loss does not show whether the model has learned to stop, keeps to the
person's language, or invents links and phone numbers. At each evaluation the model answers
a fixed set of prompts greedily, through mindwell's own transformers backend (the chat
template and stop tokens chat serves with), and the replies are scored with the checks of
`mindwell eval counselor`; the scores are logged as ``eval_behaviour_*`` beside the loss.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import TrainerCallback

from mindwell.counselor.corpus import language_of, read_corpus
from mindwell.counselor.evaluate import Prompt, Reply
from mindwell.errors import MindwellError
from mindwell.train.sft import normalise_conversation

log = logging.getLogger("mindwell.train")

# forbidden_content's names for contact details a small model invents.
LINK_KINDS = {"link", "email", "phone"}


def read_behaviour_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from a JSONL of ``{"messages": [...]}`` (ending with the person's turn, or
    with a reply to it, which is left out) or ``{"prompt": "..."}``; an optional ``lang``
    names the language the reply should be in (else the person's last turn decides)."""
    path = Path(path)
    if not path.is_file():
        raise MindwellError(f"behaviour_prompts file not found: {path}.",
                            "A relative path is looked up in the working directory, then in "
                            "the recipe's folder.")
    prompts = []
    for number, row in enumerate(read_corpus([path]), 1):
        if isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        elif isinstance(row.get("messages"), list):
            messages = list(row["messages"])
            if messages and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
        else:
            raise MindwellError(f"{path}: row {number} has neither a 'messages' list nor a "
                                "'prompt' text.",
                                'Each line is {"messages": [...]} or {"prompt": "..."}.')
        if not messages or messages[-1].get("role") != "user":
            raise MindwellError(f"{path}: row {number} does not end with the person's turn.",
                                "The messages must end with a user turn (or a reply to it).")
        lang = row.get("lang") or language_of(str(messages[-1].get("content") or "")) or "en"
        prompts.append(Prompt(str(row.get("id", number)), lang, messages))
    if not prompts:
        raise MindwellError(f"behaviour_prompts {path} has no prompts.",
                            "Add one JSON object a line.")
    return prompts


def score(replies: list[Reply], prompts: list[Prompt]) -> dict[str, float]:
    """The shares (0-1) of replies that ended by themselves, are in the prompt's language,
    hold anything forbidden or guarded, or hold a link, e-mail or phone number; and their
    mean length in tokens."""
    checks = [reply.checks(prompt.lang) for reply, prompt in zip(replies, prompts, strict=True)]

    def share(test) -> float:
        return sum(bool(test(c)) for c in checks) / len(checks)

    return {
        "behaviour_stop_rate": share(lambda c: c["ended"]),
        "behaviour_mean_tokens": sum(r.tokens for r in replies) / len(replies),
        "behaviour_language_match": share(lambda c: c["language_ok"]),
        "behaviour_guard_violations": share(lambda c: c["flags"]),
        "behaviour_links": share(lambda c: LINK_KINDS & set(c["flags"])),
    }


class BehaviourProbe(TrainerCallback):
    """Holds the prompts and answers them with the model being trained; `SFTTrainer` adds its
    scores to every evaluation's metrics (a callback's own ``on_evaluate`` runs after the
    metrics are logged, too late for metrics.csv and the choice of the best checkpoint)."""

    def __init__(self, prompts: list[Prompt], tokenizer, template, system_prompt: str | None,
                 max_tokens: int) -> None:
        self.prompts = prompts
        self.tokenizer = tokenizer
        self.template = template
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens

    def measure(self, model, step: int) -> dict[str, float]:
        import torch

        from mindwell.inference.hf import TransformersBackend

        backend = TransformersBackend(model, self.tokenizer, self.template)
        was_training = model.training
        model.eval()  # no dropout: the same weights give the same replies
        started = time.perf_counter()
        replies = []
        try:
            with torch.no_grad():
                for prompt in self.prompts:
                    messages = normalise_conversation(prompt.messages, self.system_prompt)
                    # temperature 0 is greedy; the repetition penalty is the one chat uses.
                    text = backend.generate(messages, stream=False, temperature=0,
                                            max_tokens=self.max_tokens)
                    stats = backend.last_stats
                    tokens = stats.completion_tokens - (stats.finish_reason == "stop")
                    replies.append(Reply(prompt.id, "training", text.strip(),
                                         stats.finish_reason, 0.0, tokens))
        finally:
            model.train(was_training)
        scores = score(replies, self.prompts)
        log.info("Behaviour at step %d (%d prompts, %.1f s): stop %.2f, %.1f tokens, language "
                 "%.2f, guard %.2f, links %.2f", step, len(replies),
                 time.perf_counter() - started, scores["behaviour_stop_rate"],
                 scores["behaviour_mean_tokens"], scores["behaviour_language_match"],
                 scores["behaviour_guard_violations"], scores["behaviour_links"])
        return scores
