"""A training run made ready for llama.cpp's converter: merged weights and a faithful tokenizer.

Two things decide whether an exported model talks sense: the weights (LoRA merged into the
base) and the tokenizer. llama.cpp's converter reproduces a Gemma vocabulary exactly only
from a SentencePiece ``tokenizer.model``; without one it falls back to a BPE path that does
not know Gemma's pre-tokenizer. The embedded Gemma ships only as a GGUF, so the SentencePiece
model is rebuilt here from that GGUF's own vocabulary (pieces, scores and types), and its
user-defined pieces (newline runs, image markers) are listed in ``added_tokens.json`` so the
converter keeps their type. The result reproduces the original vocabulary token for token.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from mindwell.errors import MindwellError
from mindwell.inference.templates import ARCHITECTURE_TEMPLATES, BUILTIN, ChatTemplate
from mindwell.models.registry import ResolvedModel, resolve


@dataclass
class PreparedRun:
    run_dir: Path
    task: str  # "sft" or "classify"
    adapter_dir: Path | None  # None when the run saved a whole model
    base: ResolvedModel | None
    base_dir: Path | None  # the base as a Hugging Face checkpoint directory
    merged_dir: Path
    template: ChatTemplate | None
    name: str
    # The tokenizer the run trained with, as loaded from the run. Verification uses it, not
    # a reload of the merged folder: that also holds added_tokens.json for the converter,
    # which transformers would read as new tokens.
    tokenizer: object = None


def find_adapter(run_dir: Path) -> tuple[Path | None, Path]:
    """(adapter dir or None, model dir) for a run directory, an adapter or a checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MindwellError(
            f"{run_dir} is not a directory.",
            "Pass the output_dir of a `mindwell train` run (it holds adapter/).",
        )
    for candidate in (run_dir / "adapter", run_dir):
        if (candidate / "adapter_config.json").exists():
            return candidate, candidate
    for candidate in (run_dir / "merged", run_dir / "adapter", run_dir):
        if (candidate / "config.json").exists():
            return None, candidate
    raise MindwellError(
        f"{run_dir} holds no trained model: no adapter/adapter_config.json, no "
        "merged/config.json and no config.json.",
        "Pass the output_dir of a finished `mindwell train` run; a run that crashed before "
        "saving can be resumed with the same command.",
    )


def run_task(run_dir: Path) -> str:
    recipe = Path(run_dir) / "recipe.yaml"
    if recipe.exists():
        return str((yaml.safe_load(recipe.read_text()) or {}).get("task", "sft"))
    return "sft"


def run_base(run_dir: Path) -> str | None:
    """Where the untuned base of a run loads from (its recipe's model), or None."""
    from mindwell.models.hf import checkpoint_location

    recipe = Path(run_dir) / "recipe.yaml"
    if not recipe.exists():
        return None
    model = (yaml.safe_load(recipe.read_text()) or {}).get("model")
    if not model:
        return None
    if model == "tiny-gemma":  # built in code and saved beside the run
        base = Path(run_dir) / "base"
        return str(base) if (base / "config.json").exists() else None
    try:
        return checkpoint_location(resolve(str(model)))
    except MindwellError:
        return None


def chat_template_for(config_model_type: str, tokenizer) -> ChatTemplate:
    """The template the run trained with: the family's, else the tokenizer's own."""
    from mindwell.inference.templates import template_from_source

    family = ARCHITECTURE_TEMPLATES.get(config_model_type)
    if family:
        return BUILTIN[family]
    own = template_from_source(
        getattr(tokenizer, "chat_template", None) or "", tokenizer.bos_token or "",
        tokenizer.eos_token or "", "trained",
    )
    if own is None:
        raise MindwellError(
            f"The model type '{config_model_type}' has no known chat template and its "
            "tokenizer carries none.",
            "Set tokenizer.chat_template in the run's adapter/tokenizer_config.json.",
        )
    return own


def prepare_run(run_dir: Path, work_dir: Path) -> PreparedRun:
    """Merge the run's adapter into its base and write a converter-ready checkpoint."""
    from mindwell.models.hf import checkpoint_location, load_causal_lm, read_adapter_base

    run_dir = Path(run_dir)
    task = run_task(run_dir)
    merged_dir = Path(work_dir) / "merged"
    if task == "classify":
        if not (run_dir / "adapter").is_dir():
            raise MindwellError(f"{run_dir} has no adapter/ directory.",
                                "Pass the output_dir of a finished classify run.")
        return PreparedRun(run_dir, task, run_dir / "adapter", None, None, merged_dir, None,
                           run_dir.name)
    adapter_dir, model_dir = find_adapter(run_dir)
    base = base_dir = None
    if adapter_dir is not None:
        base = resolve(read_adapter_base(adapter_dir))
        # A hub id has no local folder; only the LoRA GGUF needs one.
        base_dir = None if base.hub_id else Path(checkpoint_location(base))

    model, tokenizer = load_causal_lm(resolve(str(model_dir)))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    template = chat_template_for(model.config.model_type, tokenizer)
    tokenizer.chat_template = template.source
    shutil.rmtree(merged_dir, ignore_errors=True)
    model.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    sources = [model_dir, base_dir] if base_dir else [model_dir]
    write_sentencepiece_files(merged_dir, sources, base)
    return PreparedRun(run_dir, task, adapter_dir, base, base_dir, merged_dir, template,
                       run_dir.name, tokenizer)


def write_sentencepiece_files(
    merged_dir: Path, sources: list[Path], base: ResolvedModel | None
) -> None:
    """Put the SentencePiece model (and its user-defined pieces) beside the merged weights."""
    target = merged_dir / "tokenizer.model"
    for source in sources:
        found = Path(source) / "tokenizer.model"
        if found.exists():
            if found.resolve() != target.resolve():
                shutil.copyfile(found, target)
            break
    else:
        if base is not None and base.format == "gguf" and base.path is not None:
            target.write_bytes(sentencepiece_from_gguf(base.path))
    if target.exists():
        user_defined = user_defined_pieces(target.read_bytes())
        if user_defined:
            (merged_dir / "added_tokens.json").write_text(
                json.dumps(user_defined, ensure_ascii=False, indent=1)
            )


def user_defined_pieces(model_bytes: bytes) -> dict[str, int]:
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model_bytes)
    return {
        piece.piece: index for index, piece in enumerate(proto.pieces)
        if piece.type == pb.ModelProto.SentencePiece.USER_DEFINED
    }


def sentencepiece_from_gguf(path: Path) -> bytes:
    """A SentencePiece BPE model with exactly the GGUF's pieces, scores and token types."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as pb

    fields = GGUFReader(str(path)).fields
    if str(fields["tokenizer.ggml.model"].contents()) != "llama":
        raise MindwellError(
            f"{path.name} uses a '{fields['tokenizer.ggml.model'].contents()}' tokenizer, not "
            "SentencePiece; mindwell can rebuild only SentencePiece vocabularies from a GGUF.",
            "Train from a Hugging Face checkpoint of this model instead.",
        )

    def field(key: str, default=None):
        return fields[key].contents() if key in fields else default

    proto = pb.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.byte_fallback = True
    spec.unk_id = field("tokenizer.ggml.unknown_token_id", 3)
    spec.bos_id = field("tokenizer.ggml.bos_token_id", 2)
    spec.eos_id = field("tokenizer.ggml.eos_token_id", 1)
    spec.pad_id = field("tokenizer.ggml.padding_token_id", 0)
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(field("tokenizer.ggml.add_space_prefix", False))
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    tokens = field("tokenizer.ggml.tokens")
    scores = field("tokenizer.ggml.scores")
    types = field("tokenizer.ggml.token_type")
    spec.vocab_size = len(tokens)
    # GGUF token types use SentencePiece's numbering (1 normal ... 6 byte).
    for token, score, kind in zip(tokens, scores, types, strict=True):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = token, score, kind
    return proto.SerializeToString()
