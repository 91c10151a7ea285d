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
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mindwell import __version__
from mindwell.app.service import (
    Busy,
    CompanionService,
    KeyReused,
    NotFound,
    TooLarge,
    clean_text,
)
from mindwell.app.voice import MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS, VoiceService
from mindwell.errors import MindwellError
from mindwell.inference.base import SamplingParams
from mindwell.memory import User
from mindwell.memory.store import MAX_IDEMPOTENCY_KEY, StorageFull
from mindwell.voice.speech import SpeechUnavailable

STATIC_DIR = Path(__file__).with_name("static")
MAX_BODY_BYTES = 1024 * 1024  # a webcam frame as base64 fits; 64 KB texts are checked per field
MAX_ROW_ID = 2**63 - 1  # ids are 64-bit integers in both databases
DOCS_ASSETS = "/docs-assets"
TRANSCRIBE_PATH = "/api/v1/voice/transcribe"
# Bodies allowed past MAX_BODY_BYTES, by path: a minute of recorded speech.
BODY_LIMITS = {TRANSCRIBE_PATH: MAX_AUDIO_BYTES}
log = logging.getLogger("mindwell.serve")


def error_body(message: str, kind: str, hint: str | None = None) -> dict:
    return {"error": {"message": message, "hint": hint, "type": kind}}


def is_ollama(path: str) -> bool:
    """Ollama's routes (/api/chat, /api/tags...), whose errors are ``{"error": "text"}``."""
    return path.startswith("/api/") and not path.startswith("/api/v1/")


def error_response(path: str, status: int, message: str, kind: str, hint: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    if is_ollama(path):
        body = {"error": f"{message} {hint}" if hint else message}
    else:
        body = error_body(message, kind, hint)
    return JSONResponse(body, status_code=status, headers=headers)


class GuardMiddleware:
    """Refuses oversized bodies before they are read, and turns any unexpected exception
    into a JSON 500 whose log line names the exception type only."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = BODY_LIMITS.get(path, MAX_BODY_BYTES)
        advice = (f"Record a shorter message (up to {MAX_AUDIO_SECONDS:.0f} s of 16 kHz "
                  "mono).") if path in BODY_LIMITS else "Send less text per request."
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = error_response(
                path, 413, f"The request body has {int(length)} bytes; the limit is "
                f"{limit}.", "too_large", advice)
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
                if received > limit:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def tracking_send(message):
            nonlocal started
            if too_large:
                if message["type"] == "http.response.start":
                    started = True
                    await error_response(
                        path, 413, f"The request body is over {limit} bytes.",
                        "too_large", advice)(scope, receive, send)
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
                response = error_response(
                    path, 500, "The server failed to answer this request.", "server",
                    "Try again; if it keeps failing, check the server's log.")
                await response(scope, receive, send)


# -- request bodies -----------------------------------------------------------------------
def _cleaned(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {key: _cleaned(item) for key, item in value.items()}
    return value


class Body(BaseModel):
    """Every request body: an unpaired surrogate ("\\ud800") in any string becomes U+FFFD
    before validation, so no text can fail later when it is stored or tokenized."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data):
        return _cleaned(data)


class DiaryIn(Body):
    text: str
    reply: bool = True


class SettingsIn(Body):
    mode: Literal["journal", "ephemeral"] | None = None
    locale: str | None = Field(default=None, max_length=16)
    language: Literal["en", "ko", ""] | None = Field(
        default=None, description="The app's language; \"\" follows the browser's. \"ko\" "
        "also gives fixed replies (the crisis reply) in Korean.")


Tags = Annotated[list[Annotated[str, Field(max_length=40)]],
                Field(default_factory=list, max_length=8, description="Up to 8 words.")]


class CheckinIn(Body):
    mood: int = Field(ge=1, le=5, description="1 (awful) to 5 (great).")
    tags: Tags


class CheckinTagsIn(Body):
    tags: Tags


class MessageIn(Body):
    text: str


class FaceIn(Body):
    image: str = Field(description="A JPEG or PNG frame, base64 or a data: URL.")


class SpeakIn(Body):
    text: str = Field(description="The text to read, as it is (a crisis reply is read like "
                      "any other); up to 5,000 characters.")
    language: Literal["auto", "en", "ko"] | None = Field(
        default=None, description="For text without Hangul: \"ko\" reads it with the "
        "Korean voice. Text with Hangul always gets the Korean voice.")


SpeechLanguage = Annotated[Literal["auto", "en", "ko"] | None, Query(
    description="The language spoken: auto (Whisper picks English or Korean), en or ko. "
    "Default: the account's language setting, or auto.")]


class AnalyzeIn(Body):
    texts: list[str] = Field(max_length=256)


class SearchIn(Body):
    query: str
    k: int = Field(default=5, ge=1, le=50)


class ContentPart(Body, extra="allow"):
    """One part of a message's content: text parts are read, others (images) ignored."""

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_part_has_text(self):
        if self.type == "text" and self.text is None:
            raise ValueError("a part of type 'text' needs a string 'text'")
        return self


class ChatMessage(Body):
    # developer is OpenAI's newer name for system; tool results carry no words of the person.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = ""

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


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


# FastAPI's security classes: the OpenAPI document lists both ways to send a key, and
# /docs gets an Authorize button. Checked here, so a missing key is our JSON 401.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `mindwell keys "
                           "create --user NAME`, as `Authorization: Bearer mw_...`.")
key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False,
                          description="The same API key in an X-API-Key header.")


def current_user(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    header_key: Annotated[str | None, Depends(key_scheme)],
) -> User:
    """The user whose key the request carries (``Authorization: Bearer`` or ``X-API-Key``)."""
    key = (bearer.credentials if bearer else header_key or "").strip()
    if not key:
        raise StarletteHTTPException(401, "Missing API key.", {"WWW-Authenticate": "Bearer"})
    user = request.app.state.service.store.user_by_key(key)
    if user is None:
        raise StarletteHTTPException(401, "Unknown or revoked API key. Create one with "
                                     "`mindwell keys create --user NAME`.",
                                     {"WWW-Authenticate": "Bearer"})
    return user


Auth = Annotated[User, Depends(current_user)]


def idempotency_key(idempotency_key: Annotated[str | None, Header(
        description="Any unique string per new entry or message (a UUID); send the same one "
        "again to retry a request whose answer was lost: it is saved once.")] = None
                    ) -> str | None:
    if idempotency_key is None:
        return None
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise MindwellError(f"The Idempotency-Key header must have 1 to {MAX_IDEMPOTENCY_KEY} "
                            "characters.", "Send a UUID, a new one for each new request.")
    return key


IdemKey = Annotated[str | None, Depends(idempotency_key)]
EntryId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID, description="A diary entry's id.")]


def create_app(service: CompanionService) -> FastAPI:
    app = FastAPI(
        title="mindwell",
        version=__version__,
        description=(
            "A supportive companion's diary, chat and analysis API, with OpenAI- and "
            "Ollama-compatible chat routes. mindwell is an AI, not a therapist. Every route "
            "needs `Authorization: Bearer <key>` (create keys with `mindwell keys create`; "
            "here: the Authorize button)."),
        docs_url=None, redoc_url=None,  # /docs is served below, from local files
    )
    app.state.service = service
    app.state.voice = VoiceService()  # the speech models load on first use
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
        elif isinstance(err, KeyReused):
            status, kind = 422, "invalid_request"
        elif isinstance(err, StorageFull):
            status, kind = 507, "storage_full"
        elif isinstance(err, SpeechUnavailable):
            status, kind = 503, "unavailable"
        return error_response(request.url.path, status, err.message, kind, err.hint)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        problems = []
        if any(p.get("type") == "json_invalid" for p in err.errors()):
            return error_response(request.url.path, 400, "The request body is not valid JSON.",
                                  "invalid_request", "Send a JSON object.")
        for problem in err.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {problem.get('msg')}")
        return error_response(request.url.path, 422, "Invalid request: " + "; ".join(problems),
                              "invalid_request", "See /docs for the expected body.")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        kind = {401: "auth", 404: "not_found", 405: "invalid_request"}.get(err.status_code,
                                                                          "invalid_request")
        return error_response(request.url.path, err.status_code, str(err.detail), kind,
                              headers=getattr(err, "headers", None))

    # -- API documentation, offline ------------------------------------------------------
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None and Path(str(swagger_ui_path)).is_dir():
        app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        if swagger_ui_path is None:
            return JSONResponse(error_body(
                "The API documentation page needs Swagger UI's files, which are not "
                "installed.", "server", "pip install 'mindwell[serve]' (swagger-ui-bundle-v2); "
                "/openapi.json works without them."), status_code=503)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="mindwell API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": False})

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
        return service.update_settings(user, mode=body.mode, locale=body.locale,
                                       language=body.language)

    # -- diary ---------------------------------------------------------------------------
    @app.post("/api/v1/diary", tags=["diary"])
    def diary_add(body: DiaryIn, user: Auth, idem_key: IdemKey):
        return service.diary_entry(user, body.text, reply=body.reply, idem_key=idem_key)

    @app.get("/api/v1/diary", tags=["diary"])
    def diary_list(user: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        return {"entries": service.store.diary(user.id, limit=limit)}

    @app.delete("/api/v1/diary/{entry_id}", tags=["diary"])
    def diary_delete(entry_id: EntryId, user: Auth):
        if not service.store.delete_diary(user.id, entry_id):
            raise NotFound(f"No diary entry {entry_id}.")
        return {"deleted": 1}

    @app.post("/api/v1/checkins", tags=["diary"])
    def checkin_add(body: CheckinIn, user: Auth):
        return service.checkin(user, body.mood, body.tags)

    @app.get("/api/v1/checkins", tags=["diary"])
    def checkin_list(user: Auth, days: Annotated[int, Query(ge=1, le=3660)] = 30,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        since = time.time() - days * 86400
        return {"checkins": service.store.checkins(user.id, limit=limit, since=since)}

    @app.put("/api/v1/checkins/{checkin_id}", tags=["diary"])
    def checkin_retag(checkin_id: EntryId, body: CheckinTagsIn, user: Auth):
        return service.retag_checkin(user, checkin_id, body.tags)

    @app.delete("/api/v1/checkins/{checkin_id}", tags=["diary"])
    def checkin_delete(checkin_id: EntryId, user: Auth):
        if not service.store.delete_checkin(user.id, checkin_id):
            raise NotFound(f"No mood check-in {checkin_id}.")
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
    def session_message(session_id: str, body: MessageIn, user: Auth, idem_key: IdemKey,
                        stream: bool = True):
        events = service.chat_turn(user, session_id, body.text, idem_key=idem_key)
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
    def session_end(session_id: str, user: Auth, transcript: bool = False):
        return service.end_session(user, session_id, transcript=transcript)

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

    # -- voice ---------------------------------------------------------------------------
    @app.post(TRANSCRIBE_PATH, tags=["voice"], openapi_extra={"requestBody": {
        "required": True, "description": "A WAV file, 16-bit PCM (16 kHz mono is best), up "
        f"to {MAX_AUDIO_SECONDS:.0f} s and {MAX_AUDIO_BYTES} bytes.",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}})
    async def voice_transcribe(request: Request, user: Auth,
                               language: SpeechLanguage = None):
        """Speech to text for push-to-talk: ``{"text", "language", "seconds", "model"}``.
        The audio is processed in memory and never stored; the transcript is only returned
        (send it as a chat message, where the safety gate reads it like typed text). 413
        past a minute, 400 for a body that is not a 16-bit PCM WAV, 503 without the voice
        extra."""
        data = await request.body()
        spoken = language or user.language or "auto"
        return await run_in_threadpool(request.app.state.voice.transcribe, data, spoken,
                                       request.headers.get("content-type"))

    @app.post("/api/v1/voice/speak", tags=["voice"], response_class=Response, responses={
        200: {"content": {"audio/wav": {}}, "description": "The spoken text as a WAV."}})
    def voice_speak(body: SpeakIn, request: Request, user: Auth):
        """Text to speech for spoken replies: a WAV made in memory (Piper for English when
        installed, else espeak-ng; espeak-ng's Korean voice for text with Hangul). It reads
        the text it is given and nothing else. 503 when espeak-ng (or Piper) is missing."""
        speech = request.app.state.voice.speak(body.text, body.language)
        return Response(speech.wav, media_type="audio/wav", headers={
            "Cache-Control": "no-store", "X-Mindwell-Voice": f"{speech.engine} {speech.voice}",
            "X-Mindwell-Audio-Seconds": f"{speech.audio_seconds:.2f}"})

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
        return {"object": "list", "data": [{"id": service.model_name, "object": "model",
                                            "created": int(service.started_at),
                                            "owned_by": "mindwell"}]}

    @app.post("/v1/chat/completions", tags=["openai"])
    def openai_chat(body: OpenAIChatIn, user: Auth):
        """OpenAI's chat completions. mindwell's own fields are under ``mindwell``: the AI
        disclosure (``disclosure``, on a conversation's first reply only, for the client to
        show), ``escalated`` and ``risk``."""
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        sampling = sampling_from(body.max_completion_tokens or body.max_tokens,
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
                    "usage": _usage(info), "mindwell": _mindwell_fields(info)}

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
            yield chunk({}, info["finish_reason"], mindwell=_mindwell_fields(info))
            if include_usage:
                yield chunk(None, usage=_usage(info))
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    # -- Ollama-compatible ---------------------------------------------------------------
    def ollama_model(modified: bool = True) -> dict:
        name = service.model_name
        entry = {"name": name, "model": name, "size": 0, "digest": "",
                 "details": {"parent_model": "", "format": "gguf", "family": "mindwell",
                             "families": ["mindwell"], "parameter_size": "",
                             "quantization_level": ""}}
        if modified:
            entry["modified_at"] = _iso(service.started_at)
        return entry

    @app.get("/api/version", tags=["ollama"])
    def ollama_version():
        return {"version": __version__}

    @app.get("/api/tags", tags=["ollama"])
    def ollama_tags(user: Auth):
        return {"models": [ollama_model()]}

    @app.post("/api/show", tags=["ollama"])
    def ollama_show(body: OllamaShowIn, user: Auth):
        """The served model, whatever name is asked for (every name reaches it on the
        chat routes too)."""
        from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT

        sampling = service.sampling
        parameters = "\n".join(f"{key} {value}" for key, value in (
            ("num_ctx", service.backend.context_length), ("num_predict", sampling.max_tokens),
            ("temperature", sampling.temperature), ("top_p", sampling.top_p),
            ("top_k", sampling.top_k), ("repeat_penalty", sampling.repeat_penalty)))
        model = ollama_model()
        return {"modelfile": f"# mindwell serves {service.model_name}\n"
                             f'SYSTEM """{COUNSELOR_SYSTEM_PROMPT}"""\n',
                "parameters": parameters, "template": "", "license": "",
                "details": model["details"], "modified_at": model["modified_at"],
                "model_info": {"general.architecture": "mindwell",
                               "general.basename": service.model_name,
                               "mindwell.context_length": service.backend.context_length},
                "capabilities": ["completion"]}

    @app.get("/api/ps", tags=["ollama"])
    def ollama_ps(user: Auth):
        """The one model, loaded for as long as the server runs."""
        return {"models": [{**ollama_model(modified=False),
                            "expires_at": "9999-12-31T23:59:59Z", "size_vram": 0,
                            "context_length": service.backend.context_length}]}

    @app.post("/api/embed", tags=["ollama"])
    def ollama_embed(body: OllamaEmbedIn, user: Auth):
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

    @app.post("/api/embeddings", tags=["ollama"])
    def ollama_embeddings(body: OllamaEmbeddingsIn, user: Auth):
        """Ollama's older embedding route: one text, ``embedding``."""
        return {"embedding": service.embed([body.prompt])[0]}

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

    def ollama_reply(user: User, messages: list[dict], options: OllamaOptions, stream: bool,
                     payload) -> StreamingResponse | dict:
        """One Ollama answer; ``payload`` wraps a piece of text the way the route needs
        (``message`` for /api/chat, ``response`` for /api/generate)."""
        started = time.time()
        sampling = sampling_from(options.num_predict, options.temperature, options.top_p,
                                 options.top_k, options.repeat_penalty, options.seed)
        pieces, info = service.complete(user, messages, sampling)
        model = service.model_name

        def line(piece: str) -> dict:
            return {"model": model, "created_at": _iso(time.time()), **payload(piece)}

        if stream:
            return ollama_stream(pieces, line, info, started)
        text = "".join(pieces)
        return {**line(text), **_ollama_done(info, started)}

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


def _usage(info: dict) -> dict:
    return {"prompt_tokens": info["prompt_tokens"],
            "completion_tokens": info["completion_tokens"],
            "total_tokens": info["prompt_tokens"] + info["completion_tokens"]}


def _mindwell_fields(info: dict) -> dict:
    return {key: info[key] for key in ("disclosure", "escalated", "risk")}


def _ollama_done(info: dict, started: float) -> dict:
    """The fields of Ollama's last line (or whole answer): why it stopped and the counts."""
    return {"done": True, "done_reason": info["finish_reason"],
            "total_duration": int((time.time() - started) * 1e9), "load_duration": 0,
            "prompt_eval_count": info["prompt_tokens"], "eval_count": info["completion_tokens"],
            "mindwell": _mindwell_fields(info)}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
