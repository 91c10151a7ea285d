"""Loading causal LMs with transformers: checkpoints, LoRA adapters and the embedded GGUF.

The embedded Gemma 3 270M ships only as a GGUF. transformers can read it (dequantised to
fp32) but that takes about a minute, so it is converted once and cached as a regular
checkpoint under the mindwell cache; later loads take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from mindwell.errors import MindwellError
from mindwell.models.registry import ResolvedModel, resolve
from mindwell.paths import models_dir


def torch_settings():
    """(device, dtype): bf16 on a GPU, fp32 on a CPU (bf16 does not run usefully there)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def gguf_checkpoint_dir(resolved: ResolvedModel) -> Path:
    """A transformers checkpoint converted from a GGUF, built on first use."""
    assert resolved.path is not None
    target = models_dir() / resolved.name / "hf"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_name = str(resolved.path.parent), resolved.path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # save_pretrained refuses a model "quantized with gguf"; the weights are already plain
    # tensors after dequantisation, so dropping the quantizer marker is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name("hf.partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(target)
    return target


def checkpoint_location(resolved: ResolvedModel) -> str:
    """Where transformers should load ``resolved`` from: a directory or a hub id."""
    if resolved.format == "gguf":
        return str(gguf_checkpoint_dir(resolved))
    if resolved.hub_id:
        return resolved.hub_id
    return str(resolved.path)


def read_adapter_base(adapter_dir: Path) -> str:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise MindwellError(
            f"{adapter_dir}/adapter_config.json names no base model.",
            "Set base_model_name_or_path to a registry name, a checkpoint path or a hub id.",
        )
    return base


def load_causal_lm(resolved: ResolvedModel, for_training: bool = False):
    """(model, tokenizer) for a checkpoint, a LoRA adapter on its base, or an embedded GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = torch_settings()
    adapter_dir = None
    if resolved.path is not None and (resolved.path / "adapter_config.json").exists():
        adapter_dir = resolved.path
        resolved = resolve(read_adapter_base(adapter_dir))
    location = checkpoint_location(resolved)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, attn_implementation="eager"
        )
        tokenizer_source = (
            adapter_dir if adapter_dir and (adapter_dir / "tokenizer_config.json").exists()
            else location
        )
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except (OSError, ValueError) as err:  # missing files; unknown or broken config.json
        raise MindwellError(
            f"Could not load '{location}' with transformers: {err}",
            "Pass a local checkpoint directory, or make sure the hub is reachable for hub ids "
            "(this machine may be offline; the embedded models always work).",
        ) from err
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=for_training)
    if not for_training:
        model.eval()
    return model.to(device), tokenizer
