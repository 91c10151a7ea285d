"""`mindwell serve`: the web app and the HTTP API over ``CompanionService``.

``create_app`` only wires the parts: the routers of each surface (``routes/``: the page and
docs, the app's /api/v1, OpenAI's /v1, Ollama's /api), the error mapping, the guard
middleware and the static files.

Privacy in the logs: uvicorn's access log shows client address, method, path (ids, never
text) and status; errors are logged by type, never with their message, since a message could
quote what a person wrote.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mindwell import __version__
from mindwell.app.guard import GuardMiddleware
from mindwell.app.routes import app_api, ollama_api, openai_api, site
from mindwell.app.routes.deps import add_error_handlers
from mindwell.app.service import CompanionService
from mindwell.app.voice import VoiceService


def create_app(service: CompanionService) -> FastAPI:
    app = FastAPI(
        title="mindwell",
        version=__version__,
        description=(
            "A supportive companion's diary, chat and analysis API, with OpenAI- and "
            "Ollama-compatible chat routes. mindwell is an AI, not a therapist. Every route "
            "needs `Authorization: Bearer <key>` (create keys with `mindwell keys create`; "
            "here: the Authorize button)."),
        docs_url=None, redoc_url=None,  # /docs is served by routes/site.py, from local files
    )
    app.state.service = service
    app.state.voice = VoiceService()  # the speech models load on first use
    app.add_middleware(GuardMiddleware)
    add_error_handlers(app)

    if site.swagger_ui_path is not None and Path(str(site.swagger_ui_path)).is_dir():
        app.mount(site.DOCS_ASSETS, StaticFiles(directory=str(site.swagger_ui_path)),
                  name="docs-assets")
    if site.STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=site.STATIC_DIR), name="static")
    for surface in (site, app_api, openai_api, ollama_api):
        app.include_router(surface.router)
    return app
