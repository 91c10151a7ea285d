"""`mindwell serve`: the web app and the HTTP API over ``CompanionService``.

Routes are thin: they authenticate, validate the body and translate to and from JSON,
Server-Sent Events (the app, OpenAI clients) or NDJSON (Ollama clients). Everything a
person writes goes through the service, and so through the safety gate and guardrails.

Privacy in the logs: uvicorn's access log shows client address, method, path (ids, never
text) and status; errors are logged by type, never with their message, since a message could
quote what a person wrote.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mindwell import __version__
from mindwell.app.service import Busy, CompanionService, NotFound, TooLarge
from mindwell.errors import MindwellError
from mindwell.inference.base import SamplingParams
from mindwell.memory import User

STATIC_DIR = Path(__file__).with_name("static")
MAX_BODY_BYTES = 1024 * 1024  # a webcam frame as base64 fits; 64 KB texts are checked per field
log = logging.getLogger("mindwell.serve")


def error_body(message: str, kind: str, hint: str | None = None) -> dict:
    return {"error": {"message": message, "hint": hint, "type": kind}}


class GuardMiddleware:
    """Refuses oversized bodies before they are read, and turns any unexpected exception
    into a JSON 500 whose log line names the exception type only."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            response = JSONResponse(error_body(
                f"The request body has {int(length)} bytes; the limit is {MAX_BODY_BYTES}.",
                "too_large", "Send less text per request."), status_code=413)
            return await response(scope, receive, send)
        started = False
        received = 0
        too_large = False

        async def counting_receive():
            # Bodies without a Content-Length (chunked) are counted as they arrive; past the
            # limit the body is cut short and the app's answer replaced by a 413 below.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def tracking_send(message):
            nonlocal started
            if too_large:
                if message["type"] == "http.response.start":
                    started = True
                    await JSONResponse(error_body(
                        f"The request body is over {MAX_BODY_BYTES} bytes.", "too_large",
                        "Send less text per request."), status_code=413)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
                # The app must not be framed by another site (its erase buttons).
                message["headers"] = [*message.get("headers", []),
                                      (b"x-frame-options", b"DENY"),
                                      (b"content-security-policy", b"frame-ancestors 'none'")]
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception as err:  # last line of defence, logged without text
            log.error("%s %s failed: %s", scope.get("method"), scope.get("path"),
                      type(err).__name__)
            if not started:
                response = JSONResponse(error_body(
                    "The server failed to answer this request.", "server",
                    "Try again; if it keeps failing, check the server's log."), status_code=500)
                await response(scope, receive, send)


# -- request bodies -----------------------------------------------------------------------
class DiaryIn(BaseModel):
    text: str
    reply: bool = True


class SettingsIn(BaseModel):
    mode: Literal["journal", "ephemeral"] | None = None
    locale: str | None = Field(default=None, max_length=16)


class MessageIn(BaseModel):
    text: str


class FaceIn(BaseModel):
    image: str = Field(description="A JPEG or PNG frame, base64 or a data: URL.")


class AnalyzeIn(BaseModel):
    texts: list[str] = Field(max_length=256)


class SearchIn(BaseModel):
    query: str
    k: int = Field(default=5, ge=1, le=50)


class ChatMessage(BaseModel):
    # developer is OpenAI's newer name for system; tool results carry no words of the person.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content
                       if part.get("type") == "text")


class OpenAIChatIn(BaseModel):
    model: str = "mindwell"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None


class OllamaOptions(BaseModel):
    temperature: float | None = Field(default=None, ge=0, le=2)
    num_predict: int | None = Field(default=None, ge=1, le=4096)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    repeat_penalty: float | None = None
    seed: int | None = None


class OllamaChatIn(BaseModel):
    model: str = "mindwell"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = True
    options: OllamaOptions = Field(default_factory=OllamaOptions)


class OllamaGenerateIn(BaseModel):
    model: str = "mindwell"
    prompt: str
    system: str | None = None
    stream: bool = True
    options: OllamaOptions = Field(default_factory=OllamaOptions)


def current_user(request: Request) -> User:
    """The user whose key the request carries (``Authorization: Bearer`` or ``X-API-Key``)."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else \
        request.headers.get("x-api-key", "").strip()
    if not key:
        raise StarletteHTTPException(401, "Missing API key.", {"WWW-Authenticate": "Bearer"})
    user = request.app.state.service.store.user_by_key(key)
    if user is None:
        raise StarletteHTTPException(401, "Unknown or revoked API key. Create one with "
                                     "`mindwell keys create --user NAME`.",
                                     {"WWW-Authenticate": "Bearer"})
    return user


Auth = Annotated[User, Depends(current_user)]


def create_app(service: CompanionService) -> FastAPI:
    app = FastAPI(
        title="mindwell",
        version=__version__,
        description=(
            "A supportive companion's diary, chat and analysis API, with OpenAI- and "
            "Ollama-compatible chat routes. mindwell is an AI, not a therapist. Every route "
            "needs `Authorization: Bearer <key>` (create keys with `mindwell keys create`)."),
    )
    app.state.service = service
    app.add_middleware(GuardMiddleware)

    # -- errors --------------------------------------------------------------------------
    @app.exception_handler(MindwellError)
    async def _mindwell_error(request: Request, err: MindwellError):
        status, kind = 400, "invalid_request"
        if isinstance(err, NotFound):
            status, kind = 404, "not_found"
        elif isinstance(err, TooLarge):
            status, kind = 413, "too_large"
        elif isinstance(err, Busy):
            status, kind = 409, "busy"
        return JSONResponse(error_body(err.message, kind, err.hint), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        problems = []
        if any(p.get("type") == "json_invalid" for p in err.errors()):
            return JSONResponse(error_body("The request body is not valid JSON.",
                                           "invalid_request", "Send a JSON object."),
                                status_code=400)
        for problem in err.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {problem.get('msg')}")
        return JSONResponse(error_body("Invalid request: " + "; ".join(problems),
                                       "invalid_request", "See /docs for the expected body."),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        kind = {401: "auth", 404: "not_found", 405: "invalid_request"}.get(err.status_code,
                                                                          "invalid_request")
        return JSONResponse(error_body(str(err.detail), kind), status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    # -- app -----------------------------------------------------------------------------
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        page = STATIC_DIR / "index.html"
        if not page.exists():
            return JSONResponse(error_body("The web app files are missing.", "server",
                                           "Reinstall mindwell."), status_code=500)
        return FileResponse(page)

    @app.get("/healthz", tags=["server"])
    def healthz():
        return {"status": "ok", "model": service.backend.name,
                "queued": service.backend.queued}

    @app.get("/api/v1/me", tags=["account"])
    def me(user: Auth):
        return service.profile(user)

    @app.put("/api/v1/settings", tags=["account"])
    def settings(body: SettingsIn, user: Auth):
        service.store.update_settings(user.id, mode=body.mode, locale=body.locale)
        return service.profile(user)

    # -- diary ---------------------------------------------------------------------------
    @app.post("/api/v1/diary", tags=["diary"])
    def diary_add(body: DiaryIn, user: Auth):
        return service.diary_entry(user, body.text, reply=body.reply)

    @app.get("/api/v1/diary", tags=["diary"])
    def diary_list(user: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        return {"entries": service.store.diary(user.id, limit=limit)}

    @app.delete("/api/v1/diary/{entry_id}", tags=["diary"])
    def diary_delete(entry_id: int, user: Auth):
        if not service.store.delete_diary(user.id, entry_id):
            raise NotFound(f"No diary entry {entry_id}.")
        return {"deleted": 1}

    @app.get("/api/v1/mood", tags=["diary"])
    def mood(user: Auth, days: Annotated[int, Query(ge=1, le=3660)] = 30):
        return {"points": service.mood(user, days)}

    @app.get("/api/v1/mood.png", tags=["diary"], response_class=Response)
    def mood_png(user: Auth, days: Annotated[int, Query(ge=1, le=3660)] = 30):
        from mindwell.app.sessionlog import mood_chart_png

        return Response(mood_chart_png(service.mood(user, days)), media_type="image/png")

    # -- chat ----------------------------------------------------------------------------
    @app.post("/api/v1/sessions", tags=["chat"])
    def session_start(user: Auth):
        return service.start_session(user)

    @app.get("/api/v1/sessions", tags=["chat"])
    def session_list(user: Auth):
        return {"sessions": service.store.sessions(user.id)}

    @app.get("/api/v1/sessions/{session_id}", tags=["chat"])
    def session_get(session_id: str, user: Auth):
        return service.session_detail(user, session_id)

    @app.post("/api/v1/sessions/{session_id}/messages", tags=["chat"])
    def session_message(session_id: str, body: MessageIn, user: Auth, stream: bool = True):
        events = service.chat_turn(user, session_id, body.text)
        if not stream:
            notices, done = [], {}
            for event in events:
                if event["type"] == "notice":
                    notices.append(event["text"])
                elif event["type"] == "done":
                    done = event
            return {**{k: v for k, v in done.items() if k != "type"}, "notices": notices}

        def sse() -> Iterator[str]:
            try:
                for event in events:
                    yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
            except MindwellError as err:
                yield f"data: {json.dumps({'type': 'error', 'message': err.message})}\n\n"
            except Exception as err:  # the stream has started: report in-band
                log.error("chat stream failed: %s", type(err).__name__)
                yield 'data: {"type": "error", "message": "The reply failed; try again."}\n\n'

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/api/v1/sessions/{session_id}/face", tags=["chat"])
    def session_face(session_id: str, body: FaceIn, user: Auth):
        data = body.image.split(",", 1)[1] if body.image.startswith("data:") else body.image
        try:
            image = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as err:
            raise MindwellError("'image' is not valid base64.",
                                "Send a JPEG or PNG as base64 or a data: URL.") from err
        return service.face(user, session_id, image)

    @app.post("/api/v1/sessions/{session_id}/end", tags=["chat"])
    def session_end(session_id: str, user: Auth):
        return service.end_session(user, session_id)

    @app.get("/api/v1/sessions/{session_id}/log", tags=["chat"], response_class=Response)
    def session_log(session_id: str, user: Auth, format: Literal["md", "pdf"] = "md",
                    transcript: bool = False):
        from mindwell.app import sessionlog

        data = service.session_log(user, session_id, transcript=transcript)
        name = sessionlog.log_filename(data, format)
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if format == "pdf":
            return Response(sessionlog.render_pdf(data), media_type="application/pdf",
                            headers=headers)
        return Response(sessionlog.render_markdown(data), headers=headers,
                        media_type="text/markdown; charset=utf-8")

    @app.delete("/api/v1/sessions/{session_id}", tags=["privacy"])
    def session_delete(session_id: str, user: Auth):
        return {"deleted": service.erase_session(user, session_id)}

    @app.delete("/api/v1/data", tags=["privacy"])
    def erase_everything(user: Auth, account: bool = False):
        return {"deleted": service.erase_everything(user, account=account)}

    # -- analysis and memory -------------------------------------------------------------
    @app.post("/api/v1/analyze", tags=["analysis"])
    def analyze(body: AnalyzeIn, user: Auth):
        for text in body.texts:
            if len(text) > 64 * 1024:
                raise TooLarge("A text is over 64 KB.", "Split it into smaller parts.")
        return {"results": service.analyzer.analyze(body.texts)}

    @app.post("/api/v1/memory/search", tags=["analysis"])
    def memory_search(body: SearchIn, user: Auth):
        query = service.check_text(body.query, "query")
        found = service.memory.recall(user.id, query, k=body.k, min_score=-1.0)
        return {"results": [{k: m[k] for k in ("kind", "ref_id", "created_at", "text", "score")}
                            for m in found]}

    # -- OpenAI-compatible ---------------------------------------------------------------
    def sampling_from(max_tokens, temperature, top_p=None, top_k=None, repeat_penalty=None,
                      seed=None) -> SamplingParams:
        base = vars(service.sampling)
        return SamplingParams.from_kwargs(**{
            **base, "max_tokens": max_tokens or base["max_tokens"],
            "temperature": base["temperature"] if temperature is None else temperature,
            "top_p": top_p or base["top_p"], "top_k": top_k or base["top_k"],
            "repeat_penalty": repeat_penalty or base["repeat_penalty"],
            "seed": base["seed"] if seed is None else seed})

    @app.get("/v1/models", tags=["openai"])
    def openai_models(user: Auth):
        return {"object": "list", "data": [{"id": service.backend.name, "object": "model",
                                            "created": int(service.started_at),
                                            "owned_by": "mindwell"}]}

    @app.post("/v1/chat/completions", tags=["openai"])
    def openai_chat(body: OpenAIChatIn, user: Auth):
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        sampling = sampling_from(body.max_completion_tokens or body.max_tokens,
                                 body.temperature, body.top_p, seed=body.seed)
        pieces, info = service.complete(user, messages, sampling)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        model = service.backend.name

        if not body.stream:
            text = "".join(pieces)
            return {"id": completion_id, "object": "chat.completion", "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": _usage(service), "mindwell": info}

        def chunk(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]},
                ensure_ascii=False) + "\n\n"

        def sse() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                for piece in pieces:
                    yield chunk({"content": piece})
            except Exception as err:  # the stream has started: report in-band
                log.error("chat stream failed: %s", type(err).__name__)
                yield "data: " + json.dumps(error_body("The reply failed; try again.",
                                                       "server")) + "\n\n"
                return
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    # -- Ollama-compatible ---------------------------------------------------------------
    @app.get("/api/version", tags=["ollama"])
    def ollama_version():
        return {"version": __version__}

    @app.get("/api/tags", tags=["ollama"])
    def ollama_tags(user: Auth):
        name = service.backend.name
        return {"models": [{"name": name, "model": name, "modified_at": _iso(service.started_at),
                            "size": 0, "digest": "",
                            "details": {"format": "gguf", "family": "mindwell"}}]}

    def ollama_stream(pieces, make_line, started: float) -> StreamingResponse:
        def lines() -> Iterator[str]:
            count = 0
            try:
                for piece in pieces:
                    count += 1
                    yield json.dumps({**make_line(piece), "done": False},
                                     ensure_ascii=False) + "\n"
            except Exception as err:  # the stream has started: Ollama's in-band error
                log.error("chat stream failed: %s", type(err).__name__)
                yield json.dumps({"error": "The reply failed; try again."}) + "\n"
                return
            yield json.dumps({**make_line(""), "done": True, "done_reason": "stop",
                              "total_duration": int((time.time() - started) * 1e9),
                              "eval_count": count}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def ollama_reply(user: User, messages: list[dict], options: OllamaOptions, stream: bool,
                     payload) -> StreamingResponse | dict:
        """One Ollama answer; ``payload`` wraps a piece of text the way the route needs
        (``message`` for /api/chat, ``response`` for /api/generate)."""
        started = time.time()
        sampling = sampling_from(options.num_predict, options.temperature, options.top_p,
                                 options.top_k, options.repeat_penalty, options.seed)
        pieces, info = service.complete(user, messages, sampling)
        model = service.backend.name

        def line(piece: str) -> dict:
            return {"model": model, "created_at": _iso(time.time()), **payload(piece)}

        if stream:
            return ollama_stream(pieces, line, started)
        return {**line("".join(pieces)), "done": True, "done_reason": "stop",
                "total_duration": int((time.time() - started) * 1e9), "mindwell": info}

    @app.post("/api/chat", tags=["ollama"])
    def ollama_chat(body: OllamaChatIn, user: Auth):
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        return ollama_reply(user, messages, body.options, body.stream, lambda piece: {
            "message": {"role": "assistant", "content": piece}})

    @app.post("/api/generate", tags=["ollama"])
    def ollama_generate(body: OllamaGenerateIn, user: Auth):
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
            [{"role": "user", "content": body.prompt}]
        return ollama_reply(user, messages, body.options, body.stream,
                            lambda piece: {"response": piece})

    return app


def _usage(service: CompanionService) -> dict:
    stats = service.backend.last_stats
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
