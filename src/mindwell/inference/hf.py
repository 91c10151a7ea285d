"""transformers backend: Hugging Face checkpoints and base + LoRA adapters.

Slower than llama.cpp on a CPU, but it runs exactly the weights that training produced, so
evaluation of trained models and the export round-trip check use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, Message, SamplingParams
from mindwell.inference.templates import (
    ARCHITECTURE_TEMPLATES,
    ChatTemplate,
    get_template,
    template_from_source,
)
from mindwell.models.registry import ResolvedModel


def template_for_tokenizer(tokenizer, model_type: str, preferred: str | None) -> ChatTemplate:
    """Explicit choice, else the tokenizer's own template, else its family's default."""
    if preferred:
        return get_template(preferred)
    own = template_from_source(
        getattr(tokenizer, "chat_template", None) or "",
        tokenizer.bos_token or "",
        tokenizer.eos_token or "",
        f"tokenizer:{model_type}",
    )
    if own:
        return own
    family = ARCHITECTURE_TEMPLATES.get(model_type)
    if family:
        return get_template(family)
    raise MindwellError(
        f"The model (type '{model_type}') has no chat template.",
        "Pass --template gemma or --template chatml.",
    )


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model, tokenizer, template: ChatTemplate, n_ctx: int = 4096) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        limit = getattr(model.config, "max_position_embeddings", n_ctx) or n_ctx
        self.context_length = min(n_ctx, limit)
        # Stop on the template's end-of-turn tokens as well as the model's EOS, by id, so a
        # reply ends exactly where llama.cpp would end it.
        stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for text in template.stop_strings:
            token_id = tokenizer.convert_tokens_to_ids(text)
            if token_id is not None and token_id != tokenizer.unk_token_id:
                stop_ids.add(token_id)
        self.stop_ids = sorted(stop_ids)

    @classmethod
    def from_resolved(
        cls, resolved: ResolvedModel, template: str | None = None, n_ctx: int = 4096
    ) -> TransformersBackend:
        from mindwell.models.hf import load_causal_lm

        model, tokenizer = load_causal_lm(resolved)
        model_type = getattr(model.config, "model_type", "")
        chosen = template_for_tokenizer(tokenizer, model_type, template or resolved.template)
        return cls(model, tokenizer, chosen, n_ctx=n_ctx)

    def render(self, messages: list[Message]) -> str:
        return self.template.render(messages, add_generation_prompt=True, with_bos=True)

    def encode(self, messages: list[Message]):
        # The rendered text already holds <bos>; letting the tokenizer add another would
        # double it.
        return self.tokenizer(
            self.render(messages), return_tensors="pt", add_special_tokens=False
        ).to(self.model.device)

    def count_tokens(self, messages: list[Message]) -> int:
        return int(self.encode(messages)["input_ids"].shape[1])

    def _stream(self, messages: list[Message], params: SamplingParams) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self.encode(messages)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        cancelled = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        sampling = params.temperature > 0
        kwargs = {
            **inputs,
            "max_new_tokens": params.max_tokens,
            "do_sample": sampling,
            "repetition_penalty": params.repeat_penalty,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancel()]),
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            # Greedy decoding must not inherit sampling defaults from generation_config.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        result: dict = {}

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.no_grad():
                    result["ids"] = self.model.generate(**kwargs)
            except Exception as err:  # re-raised in the consumer's thread
                result["error"] = err
                streamer.end()

        worker = threading.Thread(target=run, name="hf-generate", daemon=True)
        worker.start()
        try:
            yield from streamer
        finally:
            cancelled.set()
            worker.join()
        if "error" in result:
            raise MindwellError(f"transformers failed to generate: {result['error']}")
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = result["ids"][0, prompt_len:].tolist()
        stats = self.last_stats
        stats.prompt_tokens = prompt_len
        stats.cached_tokens = 0
        stats.completion_tokens = len(new_ids)
        stats.finish_reason = "stop" if new_ids and new_ids[-1] in self.stop_ids else "length"
        stats.extra = {"token_ids": new_ids}
