"""A tiny Gemma-3-architecture model built in code, for tests and for trying the toolkit.

About 95k parameters (width 64, 2 layers) with a 512-piece SentencePiece BPE tokenizer
trained on the spot, so a LoRA step takes milliseconds on a CPU. The tokenizer is the same
kind as Gemma's (SentencePiece BPE with byte fallback, no dummy prefix) and has Gemma's
special tokens at Gemma's ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4, then
<start_of_turn>, <end_of_turn>), so chat templates, loss masking, stop tokens and the GGUF
export behave exactly as with the real model. Its replies are noise: it exists to exercise
code paths, not to talk.
"""

from __future__ import annotations

import io
import json
import tempfile
from functools import cache
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>",
                  "<end_of_turn>"]
# Newline runs are single user-defined pieces in Gemma's vocabulary too.
USER_DEFINED = ["\n", "\n\n"]

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


@cache
def tiny_sentencepiece_model(vocab_size: int = 512) -> bytes:
    """The serialized SentencePiece model (what Gemma ships as ``tokenizer.model``)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 4), model_writer=buffer, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, character_coverage=1.0, split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False,
        normalization_rule_name="identity", allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        control_symbols=SPECIAL_TOKENS[4:], user_defined_symbols=USER_DEFINED,
        num_threads=1, minloglevel=2,
    )
    return buffer.getvalue()


def build_tiny_tokenizer(vocab_size: int = 512):
    """Gemma's tokenizer class (transformers) on the tiny SentencePiece model."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as folder:
        write_tokenizer_files(Path(folder), vocab_size)
        return AutoTokenizer.from_pretrained(folder)


def write_tokenizer_files(directory: Path, vocab_size: int = 512) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.model").write_bytes(tiny_sentencepiece_model(vocab_size))
    config = {
        "tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
        "unk_token": "<unk>", "mask_token": "<mask>",
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def tiny_gemma_config(vocab_size: int = 512, eos_token_ids: list[int] | None = None):
    """The tiny model's Gemma3TextConfig (special-token ids as in the tiny tokenizer)."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        # Every Gemma 3 below 27B scales attention by head_dim ** -0.5, which is what
        # llama.cpp assumes; the config default (256) only equals that at head_dim 256.
        query_pre_attn_scalar=32,
        max_position_embeddings=1024,
        sliding_window=128,
        pad_token_id=SPECIAL_TOKENS.index("<pad>"),
        bos_token_id=SPECIAL_TOKENS.index("<bos>"),
        eos_token_id=eos_token_ids or [SPECIAL_TOKENS.index("<eos>"),
                                       SPECIAL_TOKENS.index("<end_of_turn>")],
        attn_implementation="eager",
    )


def build_tiny_gemma(seed: int = 0, vocab_size: int = 512):
    """(model, tokenizer): a randomly initialised Gemma 3 text model and its tokenizer."""
    import torch
    from transformers import Gemma3ForCausalLM

    from mindwell.inference.templates import GEMMA_TEMPLATE

    tokenizer = build_tiny_tokenizer(vocab_size)
    tokenizer.chat_template = GEMMA_TEMPLATE
    config = tiny_gemma_config(
        len(tokenizer),
        [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")])
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
    # transformers keeps only tokenizer.json; llama.cpp's converter reads the SentencePiece
    # model, as it does for real Gemma checkpoints.
    (directory / "tokenizer.model").write_bytes(tiny_sentencepiece_model())
    return directory
