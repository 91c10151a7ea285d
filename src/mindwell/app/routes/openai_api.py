"""OpenAI-compatible routes under /v1: the model list and chat completions, streamed as
OpenAI's ``data:`` lines. Stateless (the client sends the conversation); the service applies
the same safety layer as the app's chat."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import Field

from mindwell.app.routes.body import Body, ChatMessage
from mindwell.app.routes.compat import mindwell_fields, sampling_from
from mindwell.app.routes.deps import Auth, Service, error_body

log = logging.getLogger("mindwell.serve")
router = APIRouter()


class StreamOptions(Body):
    include_usage: bool = False


class OpenAIChatIn(Body):
    model: str = "mindwell"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stream_options: StreamOptions | None = None


def _usage(info: dict) -> dict:
    return {"prompt_tokens": info["prompt_tokens"],
            "completion_tokens": info["completion_tokens"],
            "total_tokens": info["prompt_tokens"] + info["completion_tokens"]}


@router.get("/v1/models", tags=["openai"])
def openai_models(user: Auth, service: Service):
    return {"object": "list", "data": [{"id": service.model_name, "object": "model",
                                        "created": int(service.started_at),
                                        "owned_by": "mindwell"}]}


# The stream is a StreamingResponse of lines formatted here rather than FastAPI's SSE
# route: OpenAI's clients keep getting exactly the bytes they always got (FastAPI's would
# add keep-alive comments and headers).
@router.post("/v1/chat/completions", tags=["openai"])
def openai_chat(body: OpenAIChatIn, user: Auth, service: Service):
    """OpenAI's chat completions. mindwell's own fields are under ``mindwell``: the AI
    disclosure (``disclosure``, on a conversation's first reply only, for the client to
    show), ``escalated`` and ``risk``."""
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    sampling = sampling_from(service, body.max_completion_tokens or body.max_tokens,
                             body.temperature, body.top_p, seed=body.seed)
    pieces, info = service.complete(user, messages, sampling)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    model = service.model_name
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    if not body.stream:
        text = "".join(pieces)
        return {"id": completion_id, "object": "chat.completion", "created": created,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": info["finish_reason"]}],
                "usage": _usage(info), "mindwell": mindwell_fields(info)}

    def chunk(delta: dict | None, finish: str | None = None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices, **extra}
        if include_usage and "usage" not in data:
            data["usage"] = None  # as OpenAI: null on every chunk but the last
        return "data: " + json.dumps(data, ensure_ascii=False) + "\n\n"

    def sse() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""},
                    mindwell={"disclosure": info["disclosure"]})
        try:
            for piece in pieces:
                yield chunk({"content": piece})
        except Exception as err:  # the stream has started: report in-band
            log.error("chat stream failed: %s", type(err).__name__)
            yield "data: " + json.dumps(error_body("The reply failed; try again.",
                                                   "server")) + "\n\n"
            return
        yield chunk({}, info["finish_reason"], mindwell=mindwell_fields(info))
        if include_usage:
            yield chunk(None, usage=_usage(info))
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")
