"""The app's own API under /api/v1: account, diary and check-ins, chat sessions (Server-Sent
Events), voice, analysis and memory. Routes are thin: everything a person writes goes
through the service, and so through the safety gate and guardrails."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from mindwell.app.routes.body import Body
from mindwell.app.routes.deps import TRANSCRIBE_PATH, Auth, EntryId, IdemKey, Service, Voice
from mindwell.app.service import NotFound, TooLarge
from mindwell.app.voice import MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS
from mindwell.errors import MindwellError

log = logging.getLogger("mindwell.serve")
router = APIRouter()


# -- request bodies -------------------------------------------------------------------------
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


# -- account --------------------------------------------------------------------------------
@router.get("/api/v1/me", tags=["account"])
def me(user: Auth, service: Service):
    return service.profile(user)


@router.put("/api/v1/settings", tags=["account"])
def settings(body: SettingsIn, user: Auth, service: Service):
    return service.update_settings(user, mode=body.mode, locale=body.locale,
                                   language=body.language)


# -- diary ----------------------------------------------------------------------------------
@router.post("/api/v1/diary", tags=["diary"])
def diary_add(body: DiaryIn, user: Auth, idem_key: IdemKey, service: Service):
    return service.diary_entry(user, body.text, reply=body.reply, idem_key=idem_key)


@router.get("/api/v1/diary", tags=["diary"])
def diary_list(user: Auth, service: Service,
               limit: Annotated[int, Query(ge=1, le=1000)] = 50):
    return {"entries": service.store.diary(user.id, limit=limit)}


@router.delete("/api/v1/diary/{entry_id}", tags=["diary"])
def diary_delete(entry_id: EntryId, user: Auth, service: Service):
    if not service.store.delete_diary(user.id, entry_id):
        raise NotFound(f"No diary entry {entry_id}.")
    return {"deleted": 1}


@router.post("/api/v1/checkins", tags=["diary"])
def checkin_add(body: CheckinIn, user: Auth, service: Service):
    return service.checkin(user, body.mood, body.tags)


@router.get("/api/v1/checkins", tags=["diary"])
def checkin_list(user: Auth, service: Service,
                 days: Annotated[int, Query(ge=1, le=3660)] = 30,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50):
    since = time.time() - days * 86400
    return {"checkins": service.store.checkins(user.id, limit=limit, since=since)}


@router.put("/api/v1/checkins/{checkin_id}", tags=["diary"])
def checkin_retag(checkin_id: EntryId, body: CheckinTagsIn, user: Auth, service: Service):
    return service.retag_checkin(user, checkin_id, body.tags)


@router.delete("/api/v1/checkins/{checkin_id}", tags=["diary"])
def checkin_delete(checkin_id: EntryId, user: Auth, service: Service):
    if not service.store.delete_checkin(user.id, checkin_id):
        raise NotFound(f"No mood check-in {checkin_id}.")
    return {"deleted": 1}


@router.get("/api/v1/mood", tags=["diary"])
def mood(user: Auth, service: Service, days: Annotated[int, Query(ge=1, le=3660)] = 30):
    return {"points": service.mood(user, days)}


@router.get("/api/v1/mood.png", tags=["diary"], response_class=Response)
def mood_png(user: Auth, service: Service, days: Annotated[int, Query(ge=1, le=3660)] = 30):
    from mindwell.app.sessionlog import mood_chart_png

    return Response(mood_chart_png(service.mood(user, days)), media_type="image/png")


# -- chat -----------------------------------------------------------------------------------
@router.post("/api/v1/sessions", tags=["chat"])
def session_start(user: Auth, service: Service):
    return service.start_session(user)


@router.get("/api/v1/sessions", tags=["chat"])
def session_list(user: Auth, service: Service):
    return {"sessions": service.store.sessions(user.id)}


@router.get("/api/v1/sessions/{session_id}", tags=["chat"])
def session_get(session_id: str, user: Auth, service: Service):
    return service.session_detail(user, session_id)


def _sse(data: str) -> bytes:
    return format_sse_event(data_str=data)


def chat_event_stream(events: Iterator[dict]) -> Iterator[bytes]:
    """A chat's events as Server-Sent Events, each one JSON ``data:`` line (non-ASCII text
    as it is, the bytes the app has always sent); a failure after the stream has started
    becomes an ``error`` event, the only way left to report it."""
    try:
        for event in events:
            yield _sse(json.dumps(event, ensure_ascii=False))
    except MindwellError as err:
        yield _sse(json.dumps({"type": "error", "message": err.message}))
    except Exception as err:
        log.error("chat stream failed: %s", type(err).__name__)
        yield _sse('{"type": "error", "message": "The reply failed; try again."}')


CHAT_EVENTS = {200: {"description": "Server-Sent Events: `notice`, `delta`..., `done` (with "
                     "`?stream=false`, the `done` event's fields and `notices` as one JSON "
                     "object).",
                     "content": {"text/event-stream": {"itemSchema": {
                         "type": "object", "required": ["data"],
                         "properties": {"data": {"type": "string",
                                                 "contentMediaType": "application/json"}}}}}}}


# Not FastAPI's yield-based SSE route: that form makes every answer a stream, and this route
# also answers ?stream=false with JSON; it returns FastAPI's EventSourceResponse instead.
# chat_turn runs before the response is made, so an unknown chat or one still answering is
# a 404 or 409, not a broken stream.
@router.post("/api/v1/sessions/{session_id}/messages", tags=["chat"], responses=CHAT_EVENTS)
def session_message(session_id: str, body: MessageIn, user: Auth, idem_key: IdemKey,
                    service: Service, stream: bool = True):
    events = service.chat_turn(user, session_id, body.text, idem_key=idem_key)
    if not stream:
        notices, done = [], {}
        for event in events:
            if event["type"] == "notice":
                notices.append(event["text"])
            elif event["type"] == "done":
                done = event
        return {**{k: v for k, v in done.items() if k != "type"}, "notices": notices}
    return EventSourceResponse(chat_event_stream(events), headers={"Cache-Control": "no-cache"})


@router.post("/api/v1/sessions/{session_id}/face", tags=["chat"])
def session_face(session_id: str, body: FaceIn, user: Auth, service: Service):
    data = body.image.split(",", 1)[1] if body.image.startswith("data:") else body.image
    try:
        image = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise MindwellError("'image' is not valid base64.",
                            "Send a JPEG or PNG as base64 or a data: URL.") from err
    return service.face(user, session_id, image)


@router.post("/api/v1/sessions/{session_id}/end", tags=["chat"])
def session_end(session_id: str, user: Auth, service: Service, transcript: bool = False):
    return service.end_session(user, session_id, transcript=transcript)


@router.get("/api/v1/sessions/{session_id}/log", tags=["chat"], response_class=Response)
def session_log(session_id: str, user: Auth, service: Service,
                format: Literal["md", "pdf"] = "md", transcript: bool = False):
    from mindwell.app import sessionlog

    data = service.session_log(user, session_id, transcript=transcript)
    name = sessionlog.log_filename(data, format)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "pdf":
        return Response(sessionlog.render_pdf(data), media_type="application/pdf",
                        headers=headers)
    return Response(sessionlog.render_markdown(data), headers=headers,
                    media_type="text/markdown; charset=utf-8")


@router.delete("/api/v1/sessions/{session_id}", tags=["privacy"])
def session_delete(session_id: str, user: Auth, service: Service):
    return {"deleted": service.erase_session(user, session_id)}


@router.delete("/api/v1/data", tags=["privacy"])
def erase_everything(user: Auth, service: Service, account: bool = False):
    return {"deleted": service.erase_everything(user, account=account)}


# -- voice ----------------------------------------------------------------------------------
@router.post(TRANSCRIBE_PATH, tags=["voice"], openapi_extra={"requestBody": {
    "required": True, "description": "A WAV file, 16-bit PCM (16 kHz mono is best), up "
    f"to {MAX_AUDIO_SECONDS:.0f} s and {MAX_AUDIO_BYTES} bytes.",
    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}})
async def voice_transcribe(request: Request, user: Auth, voice: Voice,
                           language: SpeechLanguage = None):
    """Speech to text for push-to-talk: ``{"text", "language", "seconds", "model"}``.
    The audio is processed in memory and never stored; the transcript is only returned
    (send it as a chat message, where the safety gate reads it like typed text). 413
    past a minute, 400 for a body that is not a 16-bit PCM WAV, 503 without the voice
    extra."""
    data = await request.body()
    spoken = language or user.language or "auto"
    return await run_in_threadpool(voice.transcribe, data, spoken,
                                   request.headers.get("content-type"))


@router.post("/api/v1/voice/speak", tags=["voice"], response_class=Response, responses={
    200: {"content": {"audio/wav": {}}, "description": "The spoken text as a WAV."}})
def voice_speak(body: SpeakIn, user: Auth, voice: Voice):
    """Text to speech for spoken replies: a WAV made in memory (Piper for English when
    installed, else espeak-ng; espeak-ng's Korean voice for text with Hangul). It reads
    the text it is given and nothing else. 503 when espeak-ng (or Piper) is missing."""
    speech = voice.speak(body.text, body.language)
    return Response(speech.wav, media_type="audio/wav", headers={
        "Cache-Control": "no-store", "X-Mindwell-Voice": f"{speech.engine} {speech.voice}",
        "X-Mindwell-Audio-Seconds": f"{speech.audio_seconds:.2f}"})


# -- analysis and memory --------------------------------------------------------------------
@router.post("/api/v1/analyze", tags=["analysis"])
def analyze(body: AnalyzeIn, user: Auth, service: Service):
    for text in body.texts:
        if len(text) > 64 * 1024:
            raise TooLarge("A text is over 64 KB.", "Split it into smaller parts.")
    return {"results": service.analyzer.analyze(body.texts)}


@router.post("/api/v1/memory/search", tags=["analysis"])
def memory_search(body: SearchIn, user: Auth, service: Service):
    query = service.check_text(body.query, "query")
    found = service.memory.recall(user.id, query, k=body.k, min_score=-1.0)
    return {"results": [{k: m[k] for k in ("kind", "ref_id", "created_at", "text", "score")}
                        for m in found]}
