"""The ASGI middleware in front of every route: body size limits, anti-framing headers, and
a last-resort 500 whose log line names the exception type only (a message could quote what
a person wrote)."""

from __future__ import annotations

import logging

from mindwell.app.routes.deps import BODY_LIMITS, MAX_BODY_BYTES, error_response
from mindwell.app.voice import MAX_AUDIO_SECONDS

log = logging.getLogger("mindwell.serve")


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
