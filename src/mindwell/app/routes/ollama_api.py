"""Ollama-compatible routes under /api (not /api/v1): the model's description, embeddings,
and chat and generate, streamed as Ollama's NDJSON lines. Errors here are Ollama's
``{"error": "text"}`` (routes/deps.py maps them by path)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import Field

from mindwell import __version__
from mindwell.app.routes.body import Body, ChatMessage
from mindwell.app.routes.compat import mindwell_fields, sampling_from
from mindwell.app.routes.deps import Auth, Service
from mindwell.app.service import CompanionService
from mindwell.errors import MindwellError
from mindwell.memory import User

log = logging.getLogger("mindwell.serve")
router = APIRouter()


class OllamaOptions(Body):
    temperature: float | None = Field(default=None, ge=0, le=2)
    num_predict: int | None = Field(default=None, ge=1, le=4096)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    repeat_penalty: float | None = None
    seed: int | None = None


class OllamaChatIn(Body):
    model: str = "mindwell"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = True
    options: OllamaOptions = Field(default_factory=OllamaOptions)


class OllamaGenerateIn(Body):
    model: str = "mindwell"
    prompt: str
    system: str | None = None
    stream: bool = True
    options: OllamaOptions = Field(default_factory=OllamaOptions)


class OllamaShowIn(Body):
    model: str | None = None
    name: str | None = None  # older clients
    verbose: bool = False


class OllamaEmbedIn(Body):
    model: str = "mindwell"
    input: str | list[str] = Field(description="A text or a list of texts.")
    truncate: bool = True
    options: OllamaOptions | None = None
    keep_alive: str | int | None = None


class OllamaEmbeddingsIn(Body):
    model: str = "mindwell"
    prompt: str


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def ollama_model(service: CompanionService, modified: bool = True) -> dict:
    name = service.model_name
    entry = {"name": name, "model": name, "size": 0, "digest": "",
             "details": {"parent_model": "", "format": "gguf", "family": "mindwell",
                         "families": ["mindwell"], "parameter_size": "",
                         "quantization_level": ""}}
    if modified:
        entry["modified_at"] = _iso(service.started_at)
    return entry


@router.get("/api/version", tags=["ollama"])
def ollama_version():
    return {"version": __version__}


@router.get("/api/tags", tags=["ollama"])
def ollama_tags(user: Auth, service: Service):
    return {"models": [ollama_model(service)]}


@router.post("/api/show", tags=["ollama"])
def ollama_show(body: OllamaShowIn, user: Auth, service: Service):
    """The served model, whatever name is asked for (every name reaches it on the
    chat routes too)."""
    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT

    sampling = service.sampling
    parameters = "\n".join(f"{key} {value}" for key, value in (
        ("num_ctx", service.backend.context_length), ("num_predict", sampling.max_tokens),
        ("temperature", sampling.temperature), ("top_p", sampling.top_p),
        ("top_k", sampling.top_k), ("repeat_penalty", sampling.repeat_penalty)))
    model = ollama_model(service)
    return {"modelfile": f"# mindwell serves {service.model_name}\n"
                         f'SYSTEM """{COUNSELOR_SYSTEM_PROMPT}"""\n',
            "parameters": parameters, "template": "", "license": "",
            "details": model["details"], "modified_at": model["modified_at"],
            "model_info": {"general.architecture": "mindwell",
                           "general.basename": service.model_name,
                           "mindwell.context_length": service.backend.context_length},
            "capabilities": ["completion"]}


@router.get("/api/ps", tags=["ollama"])
def ollama_ps(user: Auth, service: Service):
    """The one model, loaded for as long as the server runs."""
    return {"models": [{**ollama_model(service, modified=False),
                        "expires_at": "9999-12-31T23:59:59Z", "size_vram": 0,
                        "context_length": service.backend.context_length}]}


@router.post("/api/embed", tags=["ollama"])
def ollama_embed(body: OllamaEmbedIn, user: Auth, service: Service):
    """Vectors of the multilingual sentence encoder mindwell's memory uses (512
    numbers); nothing is stored."""
    started = time.time()
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > 256:
        raise MindwellError("'input' must hold 1 to 256 texts.",
                            "Send a string or a list of strings.")
    return {"model": body.model, "embeddings": service.embed(texts),
            "total_duration": int((time.time() - started) * 1e9), "load_duration": 0,
            "prompt_eval_count": sum(len(t.split()) for t in texts)}


@router.post("/api/embeddings", tags=["ollama"])
def ollama_embeddings(body: OllamaEmbeddingsIn, user: Auth, service: Service):
    """Ollama's older embedding route: one text, ``embedding``."""
    return {"embedding": service.embed([body.prompt])[0]}


def _ollama_done(info: dict, started: float) -> dict:
    """The fields of Ollama's last line (or whole answer): why it stopped and the counts."""
    return {"done": True, "done_reason": info["finish_reason"],
            "total_duration": int((time.time() - started) * 1e9), "load_duration": 0,
            "prompt_eval_count": info["prompt_tokens"], "eval_count": info["completion_tokens"],
            "mindwell": mindwell_fields(info)}


# NDJSON is not SSE: a plain StreamingResponse of the lines Ollama's clients parse.
def ollama_stream(pieces, make_line, info: dict, started: float) -> StreamingResponse:
    def lines() -> Iterator[str]:
        try:
            first = True
            for piece in pieces:
                line = {**make_line(piece), "done": False}
                if first and info["disclosure"]:
                    line["mindwell"] = {"disclosure": info["disclosure"]}
                first = False
                yield json.dumps(line, ensure_ascii=False) + "\n"
        except Exception as err:  # the stream has started: Ollama's in-band error
            log.error("chat stream failed: %s", type(err).__name__)
            yield json.dumps({"error": "The reply failed; try again."}) + "\n"
            return
        yield json.dumps({**make_line(""), **_ollama_done(info, started)},
                         ensure_ascii=False) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def ollama_reply(service: CompanionService, user: User, messages: list[dict],
                 options: OllamaOptions, stream: bool, payload) -> StreamingResponse | dict:
    """One Ollama answer; ``payload`` wraps a piece of text the way the route needs
    (``message`` for /api/chat, ``response`` for /api/generate)."""
    started = time.time()
    sampling = sampling_from(service, options.num_predict, options.temperature,
                             options.top_p, options.top_k, options.repeat_penalty,
                             options.seed)
    pieces, info = service.complete(user, messages, sampling)
    model = service.model_name

    def line(piece: str) -> dict:
        return {"model": model, "created_at": _iso(time.time()), **payload(piece)}

    if stream:
        return ollama_stream(pieces, line, info, started)
    text = "".join(pieces)
    return {**line(text), **_ollama_done(info, started)}


@router.post("/api/chat", tags=["ollama"])
def ollama_chat(body: OllamaChatIn, user: Auth, service: Service):
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    return ollama_reply(service, user, messages, body.options, body.stream, lambda piece: {
        "message": {"role": "assistant", "content": piece}})


@router.post("/api/generate", tags=["ollama"])
def ollama_generate(body: OllamaGenerateIn, user: Auth, service: Service):
    messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
        [{"role": "user", "content": body.prompt}]
    return ollama_reply(service, user, messages, body.options, body.stream,
                        lambda piece: {"response": piece})
