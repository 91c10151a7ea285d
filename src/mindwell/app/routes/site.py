"""What needs no key: the web app's page, the API documentation served from the package's
own Swagger UI files (offline, with an Authorize button), and the health check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse

from mindwell.app.routes.deps import Service, error_body

STATIC_DIR = Path(__file__).parent.parent / "static"
DOCS_ASSETS = "/docs-assets"
try:
    from swagger_ui_bundle import swagger_ui_path
except ImportError:
    swagger_ui_path = None

router = APIRouter()


@router.get("/docs", include_in_schema=False)
def docs(request: Request):
    if swagger_ui_path is None:
        return JSONResponse(error_body(
            "The API documentation page needs Swagger UI's files, which are not "
            "installed.", "server", "pip install 'mindwell[serve]' (swagger-ui-bundle-v2); "
            "/openapi.json works without them."), status_code=503)
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title="mindwell API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        swagger_ui_parameters={"persistAuthorization": False})


@router.get("/", include_in_schema=False)
def index():
    page = STATIC_DIR / "index.html"
    if not page.exists():
        return JSONResponse(error_body("The web app files are missing.", "server",
                                       "Reinstall mindwell."), status_code=500)
    return FileResponse(page)


@router.get("/healthz", tags=["server"])
def healthz(service: Service):
    return {"status": "ok", "model": service.backend.name,
            "queued": service.backend.queued}
