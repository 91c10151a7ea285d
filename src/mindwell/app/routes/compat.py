"""What the OpenAI- and Ollama-compatible routes share: the sampling a request asks for
(the server's own settings fill the rest) and mindwell's fields beside the standard ones."""

from __future__ import annotations

from mindwell.app.service import CompanionService
from mindwell.inference.base import SamplingParams


def sampling_from(service: CompanionService, max_tokens, temperature, top_p=None, top_k=None,
                  repeat_penalty=None, seed=None) -> SamplingParams:
    base = vars(service.sampling)
    return SamplingParams.from_kwargs(**{
        **base, "max_tokens": max_tokens or base["max_tokens"],
        "temperature": base["temperature"] if temperature is None else temperature,
        "top_p": top_p or base["top_p"], "top_k": top_k or base["top_k"],
        "repeat_penalty": repeat_penalty or base["repeat_penalty"],
        "seed": base["seed"] if seed is None else seed})


def mindwell_fields(info: dict) -> dict:
    return {key: info[key] for key in ("disclosure", "escalated", "risk")}
