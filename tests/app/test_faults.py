"""Faults a real client causes (issue 20): dropped streams, an erase racing a write, odd
input, decompression bombs, a full disk, crashes with retries. The race and crash cases run
against a real server on 127.0.0.1 with bounded loops."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.app.conftest import follow_serve_output, make_service, serve_in_thread

CRISIS = "I have pills saved up and tonight is the night"


@pytest.fixture
def slow_server(tiny_backend, tmp_path):
    """A live server whose replies take seconds (64 tokens on the tiny model), so a client
    can go away in the middle of one: (base, key, service)."""
    from mindwell.app.server import create_app
    from mindwell.inference import SamplingParams

    service = make_service(tiny_backend, tmp_path / "data", default_locale="US")
    service.sampling = SamplingParams(max_tokens=64, temperature=0.7, seed=0)
    user = service.store.ensure_user("me")
    key = service.store.create_key(user.id, "web")
    with serve_in_thread(create_app(service)) as base:
        yield base, key, service
    service.backend._jobs.put(None)
    service.store.close()


# -- 1: a dropped stream ---------------------------------------------------------------------
def test_a_dropped_stream_does_not_lock_the_chat_and_its_reply_is_saved(slow_server):
    base, key, _ = slow_server
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        session_id = client.post("/api/v1/sessions").json()["id"]
        # As `curl -N --max-time 1.5`: the client goes away in the middle of the reply. It
        # closes the connection after the first event (a read timeout would depend on how
        # fast the machine generates: on a fast one the reply ended before any 1 s pause).
        with client.stream("POST", f"/api/v1/sessions/{session_id}/messages",
                           json={"text": "I had a long day at work and I feel tired."}
                           ) as response:
            for _ in response.iter_lines():
                break
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = client.post(f"/api/v1/sessions/{session_id}/messages?stream=false",
                                   json={"text": "Are you still there?"})
            statuses.append(response.status_code)
            if response.status_code != 409:
                break
            assert "still answering" in response.json()["error"]["message"]
            time.sleep(0.5)
        assert statuses[-1] == 200, statuses
        turns = client.get(f"/api/v1/sessions/{session_id}").json()["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1]["text"]  # the reply the first client never read was kept


# -- 2: erasure racing a write ---------------------------------------------------------------
def test_an_erase_while_a_long_entry_is_remembered_leaves_nothing(slow_server):
    base, key, service = slow_server
    headers = {"Authorization": f"Bearer {key}"}
    marker = "harbour-7781"
    text = (f"I walked to the {marker} today and watched the boats for a long while. "
            * 900)[:60_000]
    result: dict = {}

    def post():
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            result["response"] = client.post("/api/v1/diary", json={"text": text,
                                                                    "reply": False})

    import threading

    writer = threading.Thread(target=post)
    writer.start()
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        # The entry is stored, then analysed, then its memory embedded (seconds for 60,000
        # characters): erase once the analysis is in, while the memory is being made.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            entries = client.get("/api/v1/diary").json()["entries"]
            if entries and entries[0]["analysis"]:
                break
            time.sleep(0.02)
        erased = client.delete("/api/v1/data").json()["deleted"]
        writer.join(120)
        assert erased["diary"] == 1 and result["response"].status_code == 200
        found = client.post("/api/v1/memory/search", json={"query": f"the {marker}"}).json()
        assert found["results"] == []
        assert client.get("/api/v1/diary").json()["entries"] == []
    user = service.store.user_by_name("me")
    assert service.store.memory_count(user.id) == 0
    files = [service.store.path, service.store.path.with_name("mindwell.db-wal")]
    assert not any(marker.encode() in f.read_bytes() for f in files if f.exists())


def test_a_journal_chat_switched_to_ephemeral_keeps_nothing(client, service):
    session_id = client.post("/api/v1/sessions").json()["id"]
    assert client.post(f"/api/v1/sessions/{session_id}/messages?stream=false",
                       json={"text": "My sister Hana visited today."}).status_code == 200
    user = service.store.user_by_name("me")
    assert service.store.memory_count(user.id) == 1
    assert client.put("/api/v1/settings", json={"mode": "ephemeral"}).status_code == 200
    assert service.store.memory_count(user.id) == 0  # what it remembered is forgotten
    assert client.post(f"/api/v1/sessions/{session_id}/messages?stream=false",
                       json={"text": "We cooked dinner together."}).status_code == 200
    assert service.store.memory_count(user.id) == 0
    ended = client.post(f"/api/v1/sessions/{session_id}/end").json()
    assert ended["erased"]
    assert client.get(f"/api/v1/sessions/{session_id}").status_code == 404
    assert client.get("/api/v1/sessions").json()["sessions"] == []


# -- 5: text that cannot be encoded, odd content parts, huge ids -----------------------------
def raw_json(client, path: str, body: str):
    return client.post(path, content=body.encode(), headers={"content-type":
                                                                 "application/json"})


def test_a_lone_surrogate_in_any_text_field_is_no_500(client, service):
    session_id = client.post("/api/v1/sessions").json()["id"]
    cases = [
        ("/api/v1/diary", '{"text": "a quiet day \\ud800", "reply": false}'),
        (f"/api/v1/sessions/{session_id}/messages?stream=false",
         '{"text": "hello \\udfff there"}'),
        ("/api/v1/analyze", '{"texts": ["fine \\ud800"]}'),
        ("/api/v1/memory/search", '{"query": "cat \\ud800"}'),
        ("/v1/chat/completions",
         '{"messages": [{"role": "user", "content": "hi \\ud800"}], "max_tokens": 4}'),
        ("/api/chat", '{"messages": [{"role": "user", "content": "hi \\ud800"}], '
                      '"stream": false, "options": {"num_predict": 4}}'),
        ("/api/generate", '{"prompt": "hi \\ud800", "stream": false, '
                          '"options": {"num_predict": 4}}'),
    ]
    for path, body in cases:
        response = raw_json(client, path, body)
        assert response.status_code == 200, (path, response.text)
    response = client.put("/api/v1/settings", content=b'{"locale": "K\\ud800R"}',
                          headers={"content-type": "application/json"})
    assert response.status_code == 200


def test_a_crisis_message_with_a_lone_surrogate_gets_the_crisis_reply(client):
    session_id = client.post("/api/v1/sessions").json()["id"]
    response = raw_json(client, f"/api/v1/sessions/{session_id}/messages?stream=false",
                        json.dumps({"text": CRISIS + " \ud800"}))
    assert response.status_code == 200, response.text
    assert response.json()["escalated"] and "988" in response.json()["reply"]
    events = client.get(f"/api/v1/sessions/{session_id}").json()["events"]
    assert [e["type"] for e in events] == ["escalation"]


def test_bad_content_parts_and_ids_get_a_4xx_naming_the_field(client):
    response = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": 5}]}]})
    assert response.status_code == 422
    assert "messages.0.content" in response.json()["error"]["message"]
    response = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "text"}]}]})
    assert response.status_code == 422 and "'text'" in response.json()["error"]["message"]
    reply = client.post("/v1/chat/completions", json={"max_tokens": 4, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hello"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]}]})
    assert reply.status_code == 200
    for entry_id in (2**63, 10**30):
        response = client.delete(f"/api/v1/diary/{entry_id}")
        assert response.status_code == 422, response.text
        assert "entry_id" in response.json()["error"]["message"]
    assert client.delete(f"/api/v1/diary/{2**63 - 1}").status_code == 404


# -- 4: "I'm safe. I won't hurt myself." -----------------------------------------------------
def test_a_plain_safe_answer_ends_crisis_mode_in_the_app_and_the_openai_route(client):
    session_id = client.post("/api/v1/sessions").json()["id"]

    def send(text):
        return client.post(f"/api/v1/sessions/{session_id}/messages?stream=false",
                           json={"text": text}).json()

    assert send(CRISIS)["crisis_mode"]
    safe = send("I'm safe. I won't hurt myself.")
    assert not safe["crisis_mode"] and "glad you're safe" in safe["reply"]
    first = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": CRISIS}]}).json()["choices"][0]["message"]["content"]
    answer = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": CRISIS}, {"role": "assistant", "content": first},
        {"role": "user", "content": "I'm safe. I won't hurt myself."}]}).json()
    assert "glad you're safe" in answer["choices"][0]["message"]["content"]
    assert not answer["mindwell"]["escalated"]


# -- 6: a decompression bomb -----------------------------------------------------------------
def bomb_png(side: int = 30_000) -> bytes:
    """A valid PNG of side x side black pixels (1-bit grey) in about 150 KB: decoded to
    OpenCV's colour array it would take side * side * 3 bytes (2.7 GB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


BOMB_SCRIPT = """
import resource, sys
from mindwell.errors import MindwellError
from mindwell.vision.faces import decode_image
data = open(sys.argv[1], "rb").read()
try:
    decode_image(data, "the uploaded frame")
    message = "decoded"
except MindwellError as err:
    message = err.message
except Exception as err:
    message = type(err).__name__
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, message)
"""


def test_a_decompression_bomb_is_refused_from_its_header(client, tmp_path):
    import base64
    import subprocess
    import sys

    pytest.importorskip("cv2")
    data = bomb_png()
    assert len(data) < 200_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=300)
    peak, message = done.stdout.split(" ", 1)
    assert int(peak) < 2 * 1024**3, message  # the pixels were never decoded
    assert "too large" in message
    session_id = client.post("/api/v1/sessions").json()["id"]
    response = client.post(f"/api/v1/sessions/{session_id}/face", json={
        "image": "data:image/png;base64," + base64.b64encode(data).decode()})
    assert response.status_code == 400
    assert "too large" in response.json()["error"]["message"]


# -- `mindwell serve` in a process of its own ------------------------------------------------
class Served:
    """`mindwell serve` on a free port, its output collected; ``prefix`` runs it inside
    another command (a mount namespace)."""

    def __init__(self, checkpoint, data_dir, prefix: tuple[str, ...] = ()) -> None:
        import os
        import subprocess
        import sys

        self.output: list[str] = []
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "mindwell", "serve", "--model", str(checkpoint),
             "--data-dir", str(data_dir), "--port", "0", "--max-tokens", "8"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready, found = follow_serve_output(self.process.stdout, self.output)
        if not ready.wait(240):
            self.stop()
            pytest.fail("the server did not start:\n" + "".join(self.output))
        self.base = found["base"]
        self.headers = {"Authorization": f"Bearer {found['key']}"}

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.headers, timeout=timeout)

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except Exception:
                self.kill()


# -- 7: a full disk --------------------------------------------------------------------------
def _can_mount_tmpfs(where) -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                            'mount -t tmpfs -o size=1m tmpfs "$0"', str(where)],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_full_disk_gives_a_clear_error_and_erase_still_works(tiny_checkpoint, tmp_path):
    data_dir = tmp_path / "small-disk"
    data_dir.mkdir()
    if not _can_mount_tmpfs(data_dir):
        pytest.skip("cannot mount a small tmpfs here (needs unshare and mount namespaces)")
    # The data directory is a 3 MB tmpfs of the server's own mount namespace.
    prefix = ("unshare", "--map-root-user", "--mount", "sh", "-c",
              'mount -t tmpfs -o size=3m,mode=0700 tmpfs "$0" && exec "$@"', str(data_dir))
    server = Served(tiny_checkpoint, data_dir, prefix)
    try:
        with server.client() as client:
            statuses = []
            for index in range(200):  # 20,000 characters and a memory each
                response = client.post("/api/v1/diary", json={
                    "text": f"Entry {index}: " + "a calm walk by the river " * 800,
                    "reply": False})
                statuses.append(response.status_code)
                if response.status_code != 200 or response.json().get("notices"):
                    break
            assert statuses[-1] in (200, 507) and statuses.count(200) >= 2, (
                statuses, "".join(server.output))
            if statuses[-1] == 507:
                error = response.json()["error"]
                assert error["type"] == "storage_full"
            else:
                error = {"message": response.json()["notices"][0], "hint": ""}
            assert "disk" in error["message"] and "full" in error["message"]
            assert "erasing" in (error["hint"] or error["message"]).lower()
            for _ in range(3):  # still full: the same clear answer, no 500
                again = client.post("/api/v1/diary", json={"text": "x " * 20_000})
                assert again.status_code in (200, 507), again.text

            erased = client.delete("/api/v1/data")
            assert erased.status_code == 200, erased.text
            assert erased.json()["deleted"]["diary"] >= statuses.count(200)
            assert client.get("/api/v1/diary").json()["entries"] == []
            found = client.post("/api/v1/memory/search", json={"query": "river"}).json()
            assert found["results"] == []
            # The room the erase freed takes new entries again.
            after = client.post("/api/v1/diary", json={"text": "A new start.", "reply": False})
            assert after.status_code == 200, after.text
    finally:
        server.stop()
    assert "Traceback" not in "".join(server.output)


# -- 8: private files; a crash, then retries -------------------------------------------------
def test_the_data_directory_and_database_files_are_private(tmp_path):
    import os
    import stat

    from mindwell.memory import Store

    def mode(path) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    old_umask = os.umask(0o022)  # the usual umask, which made the files 0644
    try:
        store = Store.open(tmp_path / "data")
        user = store.ensure_user("me")
        store.add_diary(user.id, "a private thought")
        files = {name: store.path.with_name("mindwell.db" + name) for name in ("", "-wal",
                                                                             "-shm")}
        assert mode(tmp_path / "data") == 0o700
        for path in files.values():
            assert path.exists() and mode(path) == 0o600, (path, oct(mode(path)))
        store.close()
        # Files an older version left readable are tightened when the store opens.
        for path in [tmp_path / "data", *files.values()]:
            if path.exists():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        Store.open(tmp_path / "data").close()
        assert mode(tmp_path / "data") == 0o700 and mode(files[""]) == 0o600
    finally:
        os.umask(old_umask)


def test_sigkill_then_retries_with_idempotency_keys_lose_and_duplicate_nothing(
        tiny_checkpoint, tmp_path):
    import threading

    from mindwell.memory import Store

    data_dir = tmp_path / "data"
    server = Served(tiny_checkpoint, data_dir)
    acknowledged: dict[str, int] = {}  # key -> id
    unanswered: dict[str, str] = {}  # key -> text: the client got an error
    lock = threading.Lock()
    stop = threading.Event()

    def writer(number: int):
        with server.client(timeout=60) as client:
            for index in range(1000):
                key, text = f"key-{number}-{index}", f"Entry {number}-{index}: a slow evening."
                if stop.is_set():
                    return
                try:
                    response = client.post("/api/v1/diary", headers={"Idempotency-Key": key},
                                           json={"text": text, "reply": index % 3 == 0})
                except httpx.TransportError:
                    with lock:
                        unanswered[key] = text
                    return
                with lock:
                    if response.status_code == 200:
                        acknowledged[key] = response.json()["id"]
                    else:
                        unanswered[key] = text

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 180
    while len(acknowledged) < 24 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # mid-write: no shutdown of any kind
    stop.set()
    for thread in threads:
        thread.join(60)
    assert len(acknowledged) >= 24, "".join(server.output)

    restarted = Served(tiny_checkpoint, data_dir)
    try:
        with restarted.client() as client:
            retried = dict(list(acknowledged.items())[:5])
            for key, text in {**unanswered, **{k: f"Entry {k[4:]}: a slow evening."
                                               for k in retried}}.items():
                response = client.post("/api/v1/diary", headers={"Idempotency-Key": key},
                                       json={"text": text, "reply": False})
                assert response.status_code == 200, response.text
                assert response.json()["analysis"]
                if key in retried:
                    assert response.json()["id"] == retried[key]  # the same entry
                acknowledged[key] = response.json()["id"]
            reused = client.post("/api/v1/diary", headers={"Idempotency-Key": "key-0-0"},
                                 json={"text": "something else"})
            assert reused.status_code == 422 and "Idempotency-Key" in reused.text
    finally:
        restarted.stop()

    store = Store.open(data_dir)
    try:
        entries = store.diary(store.user_by_name("me").id, limit=100_000)
    finally:
        store.close()
    texts = [entry["text"] for entry in entries]
    assert len(texts) == len(set(texts))  # no duplicates
    assert set(acknowledged.values()) <= {entry["id"] for entry in entries}  # none lost
    assert all(entry["analysis"] for entry in entries)  # none half-written


# -- 9: /docs offline, with an Authorize button ----------------------------------------------
def test_the_api_docs_load_from_the_package_and_can_authorize(app_and_key):
    from fastapi.testclient import TestClient

    app, _ = app_and_key
    with TestClient(app) as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200
        assert "https://" not in page.text and "http://" not in page.text  # no CDN
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert f"/docs-assets/{asset}" in page.text
            response = anonymous.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 10_000
        spec = anonymous.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(
        s for s in schemes.values() if s["type"] == "http").items()
    assert any(s["type"] == "apiKey" and s["name"] == "X-API-Key" for s in schemes.values())
    assert spec["paths"]["/api/v1/diary"]["post"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


# -- 10: the compatible routes as their own clients read them --------------------------------
def test_openai_route_names_the_model_cuts_with_length_and_reports_usage(live_server,
                                                                          service):
    openai = pytest.importorskip("openai")
    base, key = live_server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    model = client.models.list().data[0].id
    assert model == service.model_name and model not in {"llamacpp", "transformers"}

    first = [{"role": "user", "content": "I had a quiet afternoon reading."}]
    cut = client.chat.completions.create(model=model, messages=first, max_tokens=2)
    assert cut.model == model and cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 2 and cut.usage.prompt_tokens > 0
    text = cut.choices[0].message.content
    disclosure = cut.model_extra["mindwell"]["disclosure"]
    assert disclosure.startswith("mindwell is an AI companion") and disclosure not in text

    # Once per conversation: a reply later in it carries no disclosure.
    later = client.chat.completions.create(model=model, max_tokens=2, messages=[
        *first, {"role": "assistant", "content": text},
        {"role": "user", "content": "And you?"}])
    assert later.model_extra["mindwell"]["disclosure"] is None

    chunks = list(client.chat.completions.create(
        model=model, messages=first, max_tokens=3, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "length"
    assert chunks[0].model_extra["mindwell"]["disclosure"] == disclosure
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert disclosure not in streamed

    crisis = client.chat.completions.create(model=model, messages=[
        {"role": "user", "content": CRISIS}])
    assert crisis.choices[0].finish_reason == "stop"  # a fixed reply is whole


def test_ollama_route_as_the_official_client_reads_it(live_server, service):
    ollama = pytest.importorskip("ollama")
    base, key = live_server
    client = ollama.Client(host=base, headers={"Authorization": f"Bearer {key}"})
    model = service.model_name

    reply = client.chat(model=model, stream=False, options={"num_predict": 3},
                        messages=[{"role": "user", "content": "I had a quiet afternoon."}])
    assert reply.done and reply.eval_count == 3 and reply.done_reason == "length"
    assert reply.prompt_eval_count > 0 and reply.message.content
    streamed = list(client.chat(model=model, stream=True, options={"num_predict": 3},
                                messages=[{"role": "user", "content": "Hello there."}]))
    assert streamed[-1].done and streamed[-1].eval_count == 3

    shown = client.show(model)
    assert shown.details.family == "mindwell" and "completion" in shown.capabilities
    assert shown.parameters and "num_ctx" in shown.parameters
    running = client.ps()
    assert [m.model for m in running.models] == [model]
    assert running.models[0].context_length == service.backend.context_length
    embedded = client.embed(model=model, input=["I feel calm.", "나는 평온해요."])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 512

    with pytest.raises(ollama.ResponseError) as wrong_key:
        ollama.Client(host=base, headers={"Authorization": "Bearer mw_wrong"}).list()
    assert isinstance(wrong_key.value.error, str) and "API key" in wrong_key.value.error
    assert wrong_key.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as bad:
        client.chat(model=model, messages=[{"role": "assistant", "content": "hi"}])
    assert isinstance(bad.value.error, str) and "role 'user'" in bad.value.error


def test_a_retried_chat_message_is_answered_once(client, service):
    session_id = client.post("/api/v1/sessions").json()["id"]
    url = f"/api/v1/sessions/{session_id}/messages?stream=false"
    headers = {"Idempotency-Key": "7d3f0c1e-message-1"}
    first = client.post(url, json={"text": "I baked bread today."}, headers=headers).json()
    again = client.post(url, json={"text": "I baked bread today."}, headers=headers).json()
    assert again["reply"] == first["reply"] and again["replayed"]
    reused = client.post(url, json={"text": "Something else."}, headers=headers)
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["error"]["message"]
    # A server killed after saving the message but before the reply leaves this behind:
    user = service.store.user_by_name("me")
    service.store.add_turn(user.id, session_id, "user", "The oven was hot.",
                           idem_key="7d3f0c1e-message-2")
    resumed = client.post(url, json={"text": "The oven was hot."},
                          headers={"Idempotency-Key": "7d3f0c1e-message-2"})
    assert resumed.status_code == 200 and "replayed" not in resumed.json()
    turns = client.get(f"/api/v1/sessions/{session_id}").json()["turns"]
    assert [(t["role"], t["text"]) for t in turns][::2] == [
        ("user", "I baked bread today."), ("user", "The oven was hot.")]
    assert [t["role"] for t in turns] == ["user", "assistant"] * 2
    too_long = client.post(url, json={"text": "hi"}, headers={"Idempotency-Key": "k" * 201})
    assert too_long.status_code == 400 and "Idempotency-Key" in too_long.text
