"""A tiny Gemma-3-architecture model built in code, for tests and for trying the toolkit.

About 95k parameters (width 64, 2 layers) with a 512-token byte-level BPE tokenizer trained
on the spot, so a LoRA step takes milliseconds on a CPU. It has Gemma's special tokens
(<bos>, <eos>, <pad>, <start_of_turn>, <end_of_turn>) so chat templates, loss masking and
stop tokens behave exactly as with the real model. Its replies are noise: it exists to
exercise code paths, not to talk.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

_CORPUS = [
    "I have been feeling lonely since I moved to a new city.",
    "That sounds hard. What has the move been like for you?",
    "I can't sleep and I worry about everything at work.",
    "It makes sense that you feel tired. What helps you rest, even a little?",
    "요즘 너무 우울하고 아무것도 하기 싫어요.",
    "많이 힘드셨겠어요. 언제부터 그렇게 느끼셨나요?",
    "My friend said something that hurt me and I don't know what to do.",
    "Would you like to tell me more about what happened?",
    "user model system assistant counselor feeling sad happy angry calm",
    "0123456789 .,!?'\"-:;()[]{}<>/\\@#$%^&*_+=~` \n\t",
]


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer with Gemma's special tokens, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bos_id = tokenizer.token_to_id("<bos>")
    # Like Gemma, the tokenizer adds <bos> itself; templates render it as text for
    # apply_chat_template-style use with add_special_tokens=False.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )


def build_tiny_gemma(seed: int = 0, vocab_size: int = 512):
    """(model, tokenizer): a randomly initialised Gemma 3 text model and its tokenizer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from mindwell.inference.templates import GEMMA_TEMPLATE

    tokenizer = build_tiny_tokenizer(vocab_size)
    tokenizer.chat_template = GEMMA_TEMPLATE
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=1024,
        sliding_window=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")],
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_tiny_gemma(directory: str | Path, seed: int = 0) -> Path:
    """Build the tiny model and save it as a Hugging Face checkpoint directory."""
    directory = Path(directory)
    model, tokenizer = build_tiny_gemma(seed=seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
