"""The transformers backend on the tiny Gemma: checkpoints and base + LoRA adapters."""

import json

import pytest
import torch

from mindwell.inference import load_backend
from mindwell.inference.hf import TransformersBackend

CHAT = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "I feel lonely."},
]


@pytest.fixture(scope="module")
def tiny_backend(tiny_checkpoint):
    return load_backend(str(tiny_checkpoint))


def test_auto_picks_transformers_for_a_checkpoint(tiny_backend):
    assert isinstance(tiny_backend, TransformersBackend)
    assert tiny_backend.template.name == "gemma"


def test_streams_greedy_replies_that_match_the_whole_reply(tiny_backend):
    pieces = list(tiny_backend.generate(CHAT, stream=True, temperature=0, max_tokens=12))
    whole = tiny_backend.generate(CHAT, stream=False, temperature=0, max_tokens=12)
    assert "".join(pieces) == whole
    assert tiny_backend.last_stats.completion_tokens <= 12


def test_prompt_has_one_bos_and_end_of_turn_is_a_stop_id(tiny_backend):
    tokenizer = tiny_backend.tokenizer
    ids = tiny_backend.encode(CHAT)["input_ids"][0].tolist()
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in tiny_backend.stop_ids
    assert tiny_backend.count_tokens(CHAT) == len(ids)


def test_generation_stops_on_end_of_turn(tiny_backend):
    end_of_turn = tiny_backend.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    head = tiny_backend.model.lm_head
    original = head.weight.data.clone()
    try:
        # Make <end_of_turn> the only likely token: generation must stop after it.
        head.weight.data.zero_()
        head.weight.data[end_of_turn] = 1.0
        tiny_backend.generate(CHAT, stream=False, temperature=0, max_tokens=20)
    finally:
        head.weight.data.copy_(original)
    assert tiny_backend.last_stats.finish_reason == "stop"
    assert tiny_backend.last_stats.completion_tokens == 1


def test_loads_a_lora_adapter_on_its_base(tiny_checkpoint, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    from mindwell.models.tiny import build_tiny_gemma

    base, _tokenizer = build_tiny_gemma()
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)  # a non-zero adapter so it visibly changes outputs
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tiny_checkpoint)
    config_path.write_text(json.dumps(config))

    adapted = load_backend(str(adapter_dir))
    plain = load_backend(str(tiny_checkpoint))
    inputs = plain.encode(CHAT)
    with torch.no_grad():
        adapted_logits = adapted.model(**inputs).logits
        plain_logits = plain.model(**inputs).logits
    assert isinstance(adapted.model, PeftModel)
    assert not torch.allclose(adapted_logits, plain_logits)


def test_missing_checkpoint_gives_a_clear_error(tmp_path):
    from mindwell.errors import MindwellError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(MindwellError, match="Could not load"):
        load_backend(str(broken))
