"""The web app end to end: the real server in this process, driven by headless Chromium.

Screenshots go to docs/images only with MINDWELL_SCREENSHOTS=1 (so a test run never dirties
the repository); otherwise to a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
expect = sync_api.expect

REPO = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
REPLY_TIMEOUT_MS = 120_000  # a generated reply on a slow CPU
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

DIARY_TEXT = "Today I felt anxious before my exam but talking to my sister helped."
LONELY = "I have been feeling lonely since I moved."
CRISIS = "I have pills saved up and tonight is the night"
SAFE = "I'm safe now, thank you"


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Chromium is not installed (expected /usr/bin/chromium)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _screenshots_wanted() -> bool:
    return os.environ.get("MINDWELL_SCREENSHOTS") == "1"


@pytest.fixture
def web_app(request, tmp_path):
    """(app, key): the tiny model; for the documentation's screenshots, the default chat
    model (SmolLM2-135M-Instruct), as `mindwell serve` runs it.

    The tiny model's random weights answer with random tokens, which is fine for a test but
    not for a picture of the app.
    """
    if not _screenshots_wanted():
        return request.getfixturevalue("served_app")
    from mindwell.app.server import create_app
    from mindwell.app.service import CompanionService
    from mindwell.memory import Store

    backend = request.getfixturevalue("smollm2_backend")
    store = Store.open(tmp_path / "data")
    request.addfinalizer(store.close)
    # The sampling `mindwell serve` uses: the pictures show what a person would see.
    service = CompanionService(store, backend, default_locale="US")
    user = store.ensure_user("me")
    return create_app(service), store.create_key(user.id, "web")


@pytest.fixture
def app_server(web_app) -> Iterator[tuple[str, str]]:
    """(base URL, key): the app served by uvicorn on a free port in a background thread."""
    app, key = web_app
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mindwell-uvicorn", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield base, key
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser():
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    if _screenshots_wanted():
        path = REPO / "docs" / "images"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path / "screenshots"


class Page:
    """A page with its JavaScript errors collected and confirm() dialogs accepted."""

    def __init__(self, browser, base: str, viewport: dict, **options) -> None:
        self.context = browser.new_context(
            viewport=viewport, accept_downloads=True, base_url=base, **options
        )
        self.context.grant_permissions(["camera"], origin=base)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on(
            "console",
            lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"),
        )
        self.page.on("dialog", self._accept)

    def _accept(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def __call__(self, testid: str):
        return self.page.get_by_test_id(testid)

    def close(self) -> None:
        self.context.close()


def _send(ui: Page, text: str):
    """Sends a chat message and waits for the streamed reply to finish; returns the reply."""
    expect(ui("chat-send")).to_be_enabled()  # a session is open and the last reply is done
    before = ui("chat-log").locator("[data-done]").count()
    ui("chat-input").fill(text)
    ui("chat-send").click()
    done = ui("chat-log").locator("[data-done]")
    expect(done).to_have_count(before + 1, timeout=REPLY_TIMEOUT_MS)
    reply = done.nth(before)
    expect(reply).not_to_have_class("failed")
    expect(ui("error")).to_have_count(0)
    return reply


def _download(ui: Page, testid: str) -> tuple[str, bytes]:
    with ui.page.expect_download() as info:
        ui(testid).click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _api(base: str, key: str, path: str) -> dict:
    response = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def test_diary_chat_crisis_logs_and_erase(app_server, browser, shots):
    base, key = app_server
    ui = Page(browser, base, DESKTOP)
    page = ui.page
    page.goto(f"/#key={key}")

    # The key leaves the address bar; the AI disclosure and the safety banner are visible.
    expect(ui("app")).to_be_visible()
    assert "key=" not in page.url
    assert page.evaluate("localStorage.getItem('mindwell.key')") == key
    expect(ui("disclosure")).to_be_visible()
    expect(ui("disclosure")).to_contain_text("not a therapist")
    expect(ui("safety-banner")).to_contain_text("Not a therapist")

    # Helplines for the United States, through the settings.
    ui("tab-settings").click()
    expect(ui("mode-journal")).to_be_checked()
    ui("locale-input").fill("US")
    ui("locale-save").click()
    expect(ui("info").last).to_contain_text("US")
    assert _api(base, key, "/api/v1/me")["locale"] == "US"

    # Diary: an entry is analysed, answered and listed; the mood chart is drawn.
    ui("tab-diary").click()
    expect(ui("diary-empty")).to_be_visible()
    ui("diary-text").fill(DIARY_TEXT)
    ui("diary-save").click()
    expect(ui("diary-result")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(ui("diary-emotion")).not_to_be_empty()
    expect(ui("diary-risk")).not_to_be_empty()
    expect(ui("diary-signal")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
    expect(ui("diary-reply")).to_be_visible()
    expect(ui("diary-reply")).not_to_be_empty()
    expect(ui("diary-crisis")).to_be_hidden()
    expect(ui("diary-entry")).to_have_count(1)
    expect(ui("diary-entry").first).to_contain_text("anxious before my exam")
    expect(ui("diary-empty")).to_be_hidden()
    expect(ui("mood-chart")).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=mood-chart]');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    expect(ui("diary-save")).to_be_enabled()
    page.evaluate("document.querySelectorAll('[data-testid=info]').forEach(n => n.remove())")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "app-diary.png", full_page=True)

    # Chat: the disclosure opens the conversation, the reply streams in.
    ui("tab-chat").click()
    ui("chat-start").click()
    expect(ui("chat-disclosure")).to_contain_text("not a therapist")
    expect(ui("chat-input")).to_be_enabled()
    reply = _send(ui, LONELY)
    expect(reply).not_to_be_empty()
    assert reply.inner_text().strip() not in ("", "…")
    expect(ui("crisis-indicator")).to_be_hidden()

    # A crisis message: the fixed reply with the US helpline, and crisis mode on.
    reply = _send(ui, CRISIS)
    expect(ui("crisis-box")).to_have_count(1)
    expect(ui("crisis-box")).to_contain_text("988")
    expect(ui("crisis-indicator")).to_be_visible()
    page.evaluate("document.querySelector('#panel-chat .card').scrollIntoView({block: 'start'})")
    page.screenshot(path=shots / "app-chat.png")

    # Saying one is safe ends crisis mode.
    _send(ui, SAFE)
    expect(ui("crisis-indicator")).to_be_hidden()

    # End the session; the logs download with the summary, the PDF is a PDF.
    ui("chat-end").click()
    expect(ui("chat-summary")).to_be_visible()
    expect(ui("chat-summary")).not_to_be_empty()
    summary = ui("chat-summary").inner_text().strip()
    expect(ui("pdf-unavailable")).to_be_hidden()
    ui("log-transcript").check()
    name, data = _download(ui, "download-md")
    assert name.endswith(".md"), name
    markdown = data.decode("utf-8")
    assert _squash(summary.splitlines()[0])[:60] in _squash(markdown), (summary, markdown)
    assert LONELY in markdown  # the transcript was asked for
    name, data = _download(ui, "download-pdf")
    assert name.endswith(".pdf"), name
    assert data.startswith(b"%PDF"), data[:20]

    # Erase everything: the list empties, the API agrees.
    ui("tab-settings").click()
    ui("erase-all").click()
    expect(ui("erase-result")).to_be_visible()
    expect(ui("erase-result")).to_contain_text("1 diary entry")
    expect(ui("erase-all")).to_be_enabled()
    assert any("Erase every" in message for message in ui.dialogs)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "app-privacy.png", full_page=True)
    ui("tab-diary").click()
    expect(ui("diary-entry")).to_have_count(0)
    expect(ui("diary-empty")).to_be_visible()
    assert _api(base, key, "/api/v1/diary")["entries"] == []
    assert _api(base, key, "/api/v1/sessions")["sessions"] == []

    assert ui.errors == []
    ui.close()

    # The phone layout: a diary entry and its answer at 390 px.
    phone = Page(browser, base, PHONE, is_mobile=True, has_touch=True)
    phone.page.goto(f"/#key={key}")
    phone("diary-text").fill(DIARY_TEXT)
    phone("diary-save").click()
    expect(phone("diary-reply")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(phone("diary-save")).to_be_enabled()
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px)"
    phone.page.evaluate("window.scrollTo(0, 0)")
    phone.page.screenshot(path=shots / "app-phone.png")
    assert phone.errors == []
    phone.close()


def test_ephemeral_mode_webcam_and_erase_session(app_server, browser):
    base, key = app_server
    ui = Page(browser, base, DESKTOP)
    ui.page.goto(f"/#key={key}")

    ui("tab-settings").click()
    ui("mode-ephemeral").check()
    expect(ui("mode-current")).to_contain_text("ephemeral")
    assert _api(base, key, "/api/v1/me")["mode"] == "ephemeral"

    # A diary entry is answered but not kept.
    ui("tab-diary").click()
    ui("diary-text").fill(DIARY_TEXT)
    ui("diary-save").click()
    expect(ui("diary-stored")).to_contain_text("Not saved", timeout=REPLY_TIMEOUT_MS)
    expect(ui("diary-entry")).to_have_count(0)
    assert _api(base, key, "/api/v1/diary")["entries"] == []

    # Webcam on: a frame from the fake camera is read; off: the camera is released.
    ui("tab-chat").click()
    ui("chat-start").click()
    expect(ui("chat-disclosure")).to_contain_text("Ephemeral mode")
    ui("webcam-toggle").check()
    expect(ui("webcam-video")).to_be_visible()
    expect(ui("face-label")).to_have_attribute("data-state", "ok", timeout=30_000)
    ui("webcam-toggle").uncheck()
    expect(ui("webcam-video")).to_be_hidden()
    assert ui.page.evaluate(
        "document.querySelector('[data-testid=webcam-video]').srcObject === null"
    )

    # The session is erased when it ends; the Markdown comes from the page, no PDF.
    _send(ui, LONELY)
    ui("chat-end").click()
    expect(ui("chat-summary")).not_to_be_empty()
    expect(ui("pdf-unavailable")).to_be_visible()
    expect(ui("download-pdf")).to_be_disabled()
    name, data = _download(ui, "download-md")
    assert name.endswith(".md")
    assert data.strip()
    assert _api(base, key, "/api/v1/sessions")["sessions"] == []

    # Journal again; a session erased on its own.
    ui("tab-settings").click()
    ui("mode-journal").check()
    expect(ui("mode-current")).to_contain_text("journal")
    ui("tab-chat").click()
    ui("chat-start").click()
    _send(ui, LONELY)
    assert len(_api(base, key, "/api/v1/sessions")["sessions"]) == 1
    ui("tab-settings").click()
    ui("erase-session").click()
    expect(ui("erase-result")).to_contain_text("this conversation")
    assert _api(base, key, "/api/v1/sessions")["sessions"] == []
    assert ui.errors == []
    ui.close()


def test_without_a_key(app_server, browser):
    base, key = app_server
    ui = Page(browser, base, PHONE)
    ui.page.goto("/")
    expect(ui("auth-panel")).to_be_visible()
    expect(ui("auth-panel")).to_contain_text("mindwell serve")
    expect(ui("disclosure")).to_be_visible()
    expect(ui("app")).to_be_hidden()

    # A wrong key is refused visibly; the right one opens the app.
    ui("key-input").fill("mw_wrong")
    ui("key-save").click()
    expect(ui("error")).to_contain_text("not accepted")
    expect(ui("auth-panel")).to_be_visible()
    ui("key-input").fill(key)
    ui("key-save").click()
    expect(ui("app")).to_be_visible()
    expect(ui("error")).to_have_count(0)
    # The browser logs the 401 of the wrong key as a failed resource; nothing else.
    assert [e for e in ui.errors if "401" not in e] == []
    ui.close()


def _squash(text: str) -> str:
    return " ".join(text.replace("*", "").replace("_", " ").split())
