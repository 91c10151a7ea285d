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


# GGUF architecture -> transformers model type, to name a GGUF base's layers without
# reading its weights.
GGUF_MODEL_TYPES = {"gemma3": "gemma3_text", "gemma2": "gemma2", "gemma": "gemma",
                    "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
                    "mistral": "mistral", "smollm3": "smollm3"}


def _model_config(recipe: Recipe):
    """(transformers config or None, why not) for the recipe's base, without its weights."""
    from transformers import AutoConfig

    if recipe.model == TINY_MODEL:
        from mindwell.models.tiny import tiny_gemma_config

        return tiny_gemma_config(), ""
    from mindwell.models.registry import resolve
    from mindwell.paths import models_dir

    resolved = resolve(recipe.model)
    try:
        if resolved.hub_id:
            return AutoConfig.from_pretrained(resolved.hub_id, local_files_only=True), ""
        if resolved.format == "gguf":
            cached = models_dir() / resolved.name / "hf"
            if (cached / "config.json").exists():
                return AutoConfig.from_pretrained(cached), ""
            from mindwell.models.gguf_header import read_metadata

            architecture = str(read_metadata(resolved.path).get("general.architecture"))
            model_type = GGUF_MODEL_TYPES.get(architecture)
            if model_type is None:
                return None, f"its GGUF architecture '{architecture}' is not one mindwell maps"
            return AutoConfig.for_model(model_type), ""
        if resolved.path is not None and (resolved.path / "adapter_config.json").exists():
            base_location(recipe, resolved.path)  # raises: an adapter is not a base
        return AutoConfig.from_pretrained(resolved.path), ""
    except (OSError, ValueError) as err:
        if resolved.hub_id:
            return None, (f"{resolved.hub_id} is a hub id whose config is not in the local "
                          "cache (this machine may be offline)")
        return None, f"its config could not be read ({str(err)[:200]})"


def layer_names(recipe: Recipe) -> tuple[dict[str, str] | None, str]:
    """(module name -> class name of every module of the base, or None; why not) for the
    recipe's model, built on the meta device so no weights are read or allocated."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config, why = _model_config(recipe)
    if config is None:
        return None, why
    factory = (AutoModelForSequenceClassification if recipe.task == "classify"
               else AutoModelForCausalLM)
    try:
        with torch.device("meta"):
            model = factory.from_config(config)
    except (ValueError, KeyError, TypeError) as err:
        return None, f"transformers cannot build it from its config ({str(err)[:200]})"
    return {name: type(module).__name__ for name, module in model.named_modules()}, ""


# Layer types PEFT's LoRA wraps (a target that names anything else fails inside PEFT).
LORA_LAYER_TYPES = {"Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D"}


def target_module_problem(targets, modules: dict[str, str],
                          model_name: str) -> MindwellError | None:
    """A clear error when a ``lora_target_modules`` entry matches no layer of the model (or
    only layers LoRA cannot wrap), else None. Matching is PEFT's: the full module name or
    its last dotted parts."""
    if targets == "all-linear":
        return None
    wrappable = sorted({name.rsplit(".", 1)[-1] for name, kind in modules.items()
                        if kind in LORA_LAYER_TYPES and name})
    unmatched, unwrappable = [], []
    for target in targets:
        hits = [kind for name, kind in modules.items()
                if name == target or name.endswith("." + target)]
        if not hits:
            unmatched.append(target)
        elif not any(kind in LORA_LAYER_TYPES for kind in hits):
            unwrappable.append((target, hits[0]))
    if not unmatched and not unwrappable:
        return None
    import difflib

    parts = []
    for target in unmatched:
        close = difflib.get_close_matches(target, wrappable, n=1, cutoff=0.6)
        parts.append(f"'{target}' matches no layer of {model_name}"
                     + (f" (did you mean '{close[0]}'?)" if close else ""))
    parts += [f"'{target}' names a {kind} of {model_name}, not a layer LoRA can adapt"
              for target, kind in unwrappable]
    return MindwellError(
        f"lora_target_modules: {'; '.join(parts)}.",
        f"Its linear layers are: {', '.join(wrappable)}. Use some of these, or "
        "lora_target_modules: all-linear.",
    )


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
    from peft import get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing
        )
    if recipe.init_adapter:
        model = load_init_adapter(model, recipe.init_adapter)
    else:
        model = get_peft_model(model, lora_config(recipe, model))
    if recipe.gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad, or no gradient reaches LoRA.
        model.enable_input_require_grads()
    return model, tokenizer


def lora_config(recipe: Recipe, model):
    """A fresh LoRA for ``model`` from the recipe's lora_* fields, its targets checked."""
    from peft import LoraConfig, TaskType

    problem = target_module_problem(
        recipe.lora_target_modules,
        {name: type(module).__name__ for name, module in model.named_modules()}, recipe.model)
    if problem is not None:
        raise problem
    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.lora_target_modules,
        task_type=TaskType.SEQ_CLS if recipe.task == "classify" else TaskType.CAUSAL_LM,
    )


def init_adapter_problem(path: str) -> MindwellError | None:
    """Why ``path`` cannot start a LoRA run, or None."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return MindwellError(f"init_adapter: {path} is not a folder.",
                             "Give a PEFT adapter folder, e.g. runs/<run>/checkpoint-<step> or "
                             "runs/<run>/adapter: train the earlier stage first (its recipe "
                             "says which).")
    missing = [name for name in ("adapter_config.json",) if not (folder / name).exists()]
    weights = any((folder / name).exists() for name in
                  ("adapter_model.safetensors", "adapter_model.bin"))
    if missing or not weights:
        return MindwellError(
            f"init_adapter: {path} holds no PEFT adapter (needs adapter_config.json and "
            "adapter_model.safetensors).",
            "Point it at a checkpoint folder of a LoRA run (runs/<run>/checkpoint-<step>).")
    return None


def load_init_adapter(model, path: str):
    """``model`` with the trainable LoRA of an earlier run on it."""
    from peft import PeftModel

    problem = init_adapter_problem(path)
    if problem is not None:
        raise problem
    try:
        return PeftModel.from_pretrained(model, path, is_trainable=True)
    except (ValueError, KeyError, RuntimeError) as err:
        raise MindwellError(
            f"init_adapter: {path} does not fit this base model: {err}",
            "Use an adapter trained on the same base (the recipe's model).") from err
