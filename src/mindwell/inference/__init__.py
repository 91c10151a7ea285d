"""Inference backends behind one interface: ``load_backend(...).generate(messages)``."""

from __future__ import annotations

from typing import Literal

from mindwell.errors import MindwellError
from mindwell.inference.base import Backend, GenerationStats, Message, SamplingParams

BackendName = Literal["auto", "llamacpp", "transformers", "openai"]

__all__ = ["Backend", "GenerationStats", "Message", "SamplingParams", "load_backend"]


def load_backend(
    model: str | None = None,
    backend: BackendName = "auto",
    *,
    url: str | None = None,
    template: str | None = None,
    n_ctx: int = 4096,
    threads: int | None = None,
    api_key: str | None = None,
) -> Backend:
    """Load a model by registry name, path or hub id on the fitting backend.

    ``auto`` picks llama.cpp for GGUF files, transformers for checkpoints and adapters, and
    the OpenAI-compatible client whenever ``url`` is given.
    """
    if url or backend == "openai":
        if not url:
            raise MindwellError(
                "The openai backend needs a server URL.",
                "Pass --url http://127.0.0.1:8080 (llama.cpp server, vLLM or Ollama).",
            )
        from mindwell.inference.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(url, model=model, api_key=api_key, context_length=n_ctx)

    from mindwell.models.registry import resolve

    resolved = resolve(model)
    chosen = backend
    if chosen == "auto":
        chosen = "llamacpp" if resolved.format == "gguf" else "transformers"
    if chosen == "llamacpp":
        if resolved.format != "gguf":
            raise MindwellError(
                f"The llamacpp backend needs a GGUF file, but '{resolved.name}' is a "
                f"{resolved.format} model.",
                "Use --backend transformers, or export the model with `mindwell export`.",
            )
        from mindwell.inference.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            resolved.path, template=template or resolved.template, n_ctx=n_ctx, threads=threads,
            lora=resolved.lora,
        )
    if chosen == "transformers":
        if resolved.lora is not None:
            raise MindwellError(
                f"'{resolved.name}' is a LoRA GGUF on {resolved.path.name}; the transformers "
                "backend cannot apply a GGUF adapter.",
                "Use --backend llamacpp (the default for it).",
            )
        from mindwell.inference.hf import TransformersBackend

        return TransformersBackend.from_resolved(resolved, template=template, n_ctx=n_ctx)
    raise MindwellError(
        f"Unknown backend '{backend}'.", "Choose one of: auto, llamacpp, transformers, openai."
    )
