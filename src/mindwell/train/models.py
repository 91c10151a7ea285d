"""Building the model to train: base weights, quantization, and LoRA/full fine-tuning."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from mindwell.errors import MindwellError
from mindwell.train.recipe import Recipe

log = logging.getLogger("mindwell.train")
TINY_MODEL = "tiny-gemma"


def use_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def compute_dtype(recipe: Recipe):
    import torch

    if recipe.precision == "bf16" or (recipe.precision == "auto" and use_cuda()):
        return torch.bfloat16
    return torch.float32


def effective_method(recipe: Recipe) -> str:
    """QLoRA only where it runs; say so once when falling back."""
    if recipe.method != "qlora":
        return recipe.method
    if use_cuda() and importlib.util.find_spec("bitsandbytes") is not None:
        return "qlora"
    log.warning(
        "QLoRA needs a CUDA GPU and the bitsandbytes package; training plain LoRA in %s "
        "instead (same adapter format).", "fp32 on CPU" if not use_cuda() else "bf16",
    )
    return "lora"


def base_location(recipe: Recipe, workdir: Path) -> str:
    """A directory or hub id transformers can load the base model from."""
    if recipe.model == TINY_MODEL:
        from mindwell.models.tiny import save_tiny_gemma

        target = workdir / "base"
        if not (target / "config.json").exists():
            save_tiny_gemma(target, seed=0)
        return str(target)
    from mindwell.models.hf import checkpoint_location, read_adapter_base
    from mindwell.models.registry import resolve

    resolved = resolve(recipe.model)
    if resolved.path is not None and (resolved.path / "adapter_config.json").exists():
        raise MindwellError(
            f"'{recipe.model}' is a LoRA adapter; training starts from a base model.",
            f"Set model: {read_adapter_base(resolved.path)} (its base), or merge the adapter "
            "first with `merge=true`.",
        )
    return checkpoint_location(resolved)


def load_model(recipe: Recipe, location: str, num_labels: int | None = None,
               id2label: dict | None = None):
    """(model, tokenizer) ready for training, with adapters attached where asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    method = effective_method(recipe)
    kwargs = {"dtype": compute_dtype(recipe), "attn_implementation": "eager"}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        if recipe.task == "classify":
            model = AutoModelForSequenceClassification.from_pretrained(
                location, num_labels=num_labels, id2label=id2label,
                label2id={v: k for k, v in (id2label or {}).items()}, **kwargs,
            )
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tokenizer.pad_token_id
        else:
            model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as err:
        raise MindwellError(
            f"Could not load the base model '{recipe.model}' ({location}): {err}",
            "Use a registry name (`mindwell models`), a local checkpoint, or a hub id with a "
            "reachable hub.",
        ) from err
    except (RuntimeError, MemoryError) as err:
        if "memory" in str(err).lower():
            raise MindwellError(
                f"The base model '{recipe.model}' does not fit in memory: {err}",
                "Use a smaller model, method=qlora on a GPU, or a machine with more memory.",
            ) from err
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    if method == "full":
        return model, tokenizer
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing
        )
    config = LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.lora_target_modules,
        task_type=TaskType.SEQ_CLS if recipe.task == "classify" else TaskType.CAUSAL_LM,
    )
    model = get_peft_model(model, config)
    if recipe.gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad, or no gradient reaches LoRA.
        model.enable_input_require_grads()
    return model, tokenizer
