"""What every route surface shares: the service, the key check, request limits, and the
mapping of mindwell's errors to HTTP answers (JSON on the app's and OpenAI's routes,
Ollama's own ``{"error": "text"}`` on Ollama's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from mindwell.app.service import Busy, CompanionService, KeyReused, NotFound, TooLarge
from mindwell.app.voice import MAX_AUDIO_BYTES, VoiceService
from mindwell.errors import MindwellError
from mindwell.memory import User
from mindwell.memory.store import MAX_IDEMPOTENCY_KEY, StorageFull
from mindwell.voice.speech import SpeechUnavailable

# -- limits ---------------------------------------------------------------------------------
MAX_BODY_BYTES = 1024 * 1024  # a webcam frame as base64 fits; 64 KB texts are checked per field
MAX_ROW_ID = 2**63 - 1  # ids are 64-bit integers in both databases
TRANSCRIBE_PATH = "/api/v1/voice/transcribe"
# Bodies allowed past MAX_BODY_BYTES, by path: a minute of recorded speech.
BODY_LIMITS = {TRANSCRIBE_PATH: MAX_AUDIO_BYTES}


# -- the service ----------------------------------------------------------------------------
# Read from app.state at each request (async: no thread hop for an attribute read), so a
# test that swaps app.state.voice reaches the routes.
async def get_service(request: Request) -> CompanionService:
    return request.app.state.service


async def get_voice(request: Request) -> VoiceService:
    return request.app.state.voice


Service = Annotated[CompanionService, Depends(get_service)]
Voice = Annotated[VoiceService, Depends(get_voice)]


# -- auth -----------------------------------------------------------------------------------
# FastAPI's security classes: the OpenAPI document lists both ways to send a key, and
# /docs gets an Authorize button. auto_error=False: checked here, so a missing key is our
# JSON 401 rather than FastAPI's.
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


# -- request headers and ids ----------------------------------------------------------------
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


# -- errors ---------------------------------------------------------------------------------
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


# The first class an error is an instance of decides; any other MindwellError is a 400.
ERROR_STATUS = ((NotFound, 404, "not_found"), (TooLarge, 413, "too_large"),
                (Busy, 409, "busy"), (KeyReused, 422, "invalid_request"),
                (StorageFull, 507, "storage_full"), (SpeechUnavailable, 503, "unavailable"))


async def _mindwell_error(request: Request, err: MindwellError):
    status, kind = next(((status, kind) for cls, status, kind in ERROR_STATUS
                         if isinstance(err, cls)), (400, "invalid_request"))
    return error_response(request.url.path, status, err.message, kind, err.hint)


async def _validation_error(request: Request, err: RequestValidationError):
    if any(p.get("type") == "json_invalid" for p in err.errors()):
        return error_response(request.url.path, 400, "The request body is not valid JSON.",
                              "invalid_request", "Send a JSON object.")
    problems = []
    for problem in err.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {problem.get('msg')}")
    return error_response(request.url.path, 422, "Invalid request: " + "; ".join(problems),
                          "invalid_request", "See /docs for the expected body.")


async def _http_error(request: Request, err: StarletteHTTPException):
    kind = {401: "auth", 404: "not_found", 405: "invalid_request"}.get(err.status_code,
                                                                      "invalid_request")
    return error_response(request.url.path, err.status_code, str(err.detail), kind,
                          headers=getattr(err, "headers", None))


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MindwellError, _mindwell_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
