"""The server on the tiny in-code Gemma, the embedded analysis models and a temp SQLite."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from mindwell.app.server import create_app
from mindwell.app.service import CompanionService
from mindwell.inference import SamplingParams, load_backend
from mindwell.memory import Store


@pytest.fixture(scope="session")
def tiny_backend(tiny_checkpoint):
    backend = load_backend(str(tiny_checkpoint), n_ctx=700)
    yield backend


def make_service(tiny_backend, data_dir, **kwargs) -> CompanionService:
    store = Store.open(data_dir)
    # 24 tokens keep a reply under a second; seed for repeatable text.
    sampling = SamplingParams(max_tokens=24, temperature=0.7, seed=0)
    return CompanionService(store, tiny_backend, sampling=sampling, **kwargs)


@pytest.fixture
def service(tiny_backend, tmp_path):
    service = make_service(tiny_backend, tmp_path / "data", default_locale="US")
    yield service
    service.backend._jobs.put(None)  # stop the worker; the shared tiny model stays loaded
    service.store.close()


@pytest.fixture
def app_and_key(service):
    user = service.store.ensure_user("me")
    return create_app(service), service.store.create_key(user.id, "web")


@pytest.fixture
def served_app(app_and_key):
    """(app, api_key) for the browser test."""
    return app_and_key


@pytest.fixture
def client(app_and_key):
    from fastapi.testclient import TestClient

    app, key = app_and_key
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as test_client:
        yield test_client


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """``app`` on a free port of 127.0.0.1 (uvicorn in a thread); yields the base URL."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(app_and_key):
    """The app on a real port (uvicorn in a thread): (base_url, api_key)."""
    app, key = app_and_key
    with serve_in_thread(app) as base:
        yield base, key


def follow_serve_output(stdout, output: list[str]) -> tuple[threading.Event, dict]:
    """Read a `mindwell serve` process's output in a thread, appending each line to
    ``output``: the event is set once it listens, and the dict then holds its ``base`` URL
    and API ``key`` (from the "Open http...#key=" line)."""
    ready, found = threading.Event(), {}

    def read():
        for line in stdout:
            output.append(line)
            if line.startswith("Open http"):
                found["key"] = line.split("#key=")[1].strip()
            if "Uvicorn running on" in line:
                found["base"] = line.split("running on ")[1].split()[0]
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return ready, found
