"""The server on a real socket: the official OpenAI client, concurrent streams, and a
server killed with SIGKILL while diary entries are written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mindwell.memory import Store
from tests.app.conftest import follow_serve_output


def test_the_official_openai_client_talks_to_it(live_server):
    openai = pytest.importorskip("openai")
    base, key = live_server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    assert client.models.list().data[0].id
    reply = client.chat.completions.create(
        model="mindwell", messages=[{"role": "user", "content": "I feel a bit low today."}],
        max_tokens=16)
    assert reply.choices[0].message.content  # the disclosure comes in its own field
    assert reply.model_extra["mindwell"]["disclosure"].startswith("mindwell is an AI companion")
    stream = client.chat.completions.create(
        model="mindwell", stream=True, messages=[
            {"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "How many sleeping pills would it take?"}])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "988" in text  # method-seeking escalates on this route too
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key="mw_wrong").models.list()


def test_sixteen_concurrent_chat_streams_all_complete(live_server):
    base, key = live_server
    headers = {"Authorization": f"Bearer {key}"}

    def one_conversation(number: int) -> dict:
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            session_id = client.post("/api/v1/sessions").json()["id"]
            with client.stream("POST", f"/api/v1/sessions/{session_id}/messages",
                               json={"text": f"Message {number}: I had a long day."}) as reply:
                assert reply.status_code == 200
                events = [json.loads(line[6:]) for line in reply.iter_lines()
                          if line.startswith("data: ")]
        return events[-1]

    with ThreadPoolExecutor(16) as pool:
        finals = list(pool.map(one_conversation, range(16)))
    assert [event["type"] for event in finals] == ["done"] * 16
    sessions = httpx.get(f"{base}/api/v1/sessions", headers=headers).json()["sessions"]
    assert len(sessions) == 16 and all(s["turns"] == 1 for s in sessions)


def test_sigkill_loses_no_acknowledged_diary_entry_and_logs_hold_no_text(
        tiny_checkpoint, tmp_path):
    data_dir = tmp_path / "data"
    marker = "zebra-lantern-4417"  # appears in every entry; must never reach the logs
    server = subprocess.Popen(
        [sys.executable, "-m", "mindwell", "serve", "--model", str(tiny_checkpoint),
         "--data-dir", str(data_dir), "--port", "0", "--max-tokens", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output: list[str] = []
    ready, base_and_key = follow_serve_output(server.stdout, output)
    assert ready.wait(180), "".join(output)
    headers = {"Authorization": f"Bearer {base_and_key['key']}"}
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(number: int):
        with httpx.Client(base_url=base_and_key["base"], headers=headers, timeout=60) as client:
            for index in range(1000):
                if stop.is_set():
                    return
                try:
                    response = client.post("/api/v1/diary", json={
                        "text": f"{marker} entry {number}-{index}", "reply": index % 5 == 0})
                except httpx.TransportError:
                    return  # the server died mid-request: that entry was never acknowledged
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(response.json()["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.time() + 120
    while len(acknowledged) < 40 and time.time() < deadline:
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)  # mid-write, no shutdown of any kind
    server.wait(30)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) >= 40, "".join(output)

    store = Store.open(data_dir)
    user = store.user_by_name("me")
    stored = {entry["id"] for entry in store.diary(user.id, limit=100_000)}
    store.close()
    assert set(acknowledged) <= stored
    logs = "".join(output)
    assert "POST /api/v1/diary" in logs  # the access log works...
    assert marker not in logs  # ...and never shows what people wrote


def test_generation_can_go_to_a_remote_openai_compatible_server(live_server, tmp_path):
    """A second mindwell sends its generation to the first one's /v1 route, as it would to
    vLLM or llama-server: safety, analysis and storage stay local."""
    from mindwell.app.service import CompanionService
    from mindwell.inference import SamplingParams, load_backend

    base, key = live_server
    remote = load_backend(url=base, api_key=key, n_ctx=700)
    service = CompanionService(Store.open(tmp_path / "local"), remote,
                               sampling=SamplingParams(max_tokens=8))
    user = service.store.ensure_user("me")
    entry = service.diary_entry(user, "I went for a long walk and felt calmer.")
    assert entry["stored"] and entry["reply"]
    crisis = service.diary_entry(user, "I have pills saved up and tonight is the night")
    assert crisis["escalated"] and "988" in crisis["reply"]
    service.close()
