"""The training recipe: every argument of `mindwell train`, validated before anything loads.

A recipe is a YAML file of these fields; `key=value` arguments on the command line override
it. An unknown or misspelt key is an error that names the closest valid key, and values are
type-checked by pydantic, so a typo never silently trains with a default.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mindwell.errors import MindwellError

# What the behaviour probe logs at each evaluation (as eval_<name>); the last three are
# better small.
BEHAVIOUR_METRICS = ("behaviour_stop_rate", "behaviour_language_match",
                     "behaviour_mean_tokens", "behaviour_guard_violations", "behaviour_links")
LOWER_IS_BETTER = {"loss", "behaviour_mean_tokens", "behaviour_guard_violations",
                   "behaviour_links"}


class Recipe(BaseModel):
    """Training arguments for both tasks. Fields are grouped as in a recipe file."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- what to train ------------------------------------------------------------------
    task: Literal["sft", "classify", "dpo"] = Field(
        description="sft: counseling chat (causal LM); classify: text classification; dpo: "
        "preference tuning of a chat model on (conversation, chosen, rejected) rows."
    )
    model: str = Field(
        description="Base model: a registry name (gemma3-270m, tiny-gemma), a checkpoint or "
        "adapter directory, or a hub id."
    )
    output_dir: str = Field("runs/latest", description="Where the adapter, metrics, plots go.")

    # -- data ---------------------------------------------------------------------------
    data: str | list[str] = Field(
        description="Training data: CSV, JSONL, JSON or parquet path, or a hub data set name; "
        "a list of files with the same columns is read as one table.")
    eval_data: str | None = Field(None, description="Separate validation data (optional).")
    data_split: str | None = Field(
        None, description="Hub split or a value of split_column to train on (e.g. train)."
    )
    split_column: str | None = Field(
        None, description="Column that assigns rows to train/val(idation)/test; honoured as is."
    )
    group_column: str | None = Field(
        None, description="Rows sharing this value stay in the same split (e.g. questionID)."
    )
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                       description="Held out for validation when no split is "
                                       "given.")
    data_weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, description="sft: one weight per data file: each file is sampled to weight x "
        "its rows before the split (above 1 repeats rows, below 1 takes a seeded subset), so "
        "a small source is not drowned by a large one.")
    data_licences: list[str] | None = Field(
        None, description="One licence per data file (e.g. MIT, CC-BY-NC-4.0, project), "
        "written into the model card; an NC or ND licence with a model_licence that is not "
        "non-commercial is warned about.")
    model_licence: str | None = Field(None, description="The trained model's licence, for "
                                      "the model card (e.g. CC-BY-NC-4.0).")
    max_train_samples: int | None = Field(None, ge=1, description="Cap, for quick runs.")
    max_eval_samples: int | None = Field(None, ge=1, description="Cap on validation rows.")

    # sft columns
    prompt_columns: list[str] = Field(
        default_factory=list,
        description="Single-turn data: columns joined (blank line between) into the user turn.",
    )
    response_column: str | None = Field(None, description="Single-turn data: the answer.")
    messages_column: str = Field("messages", description="Multi-turn data: list of "
                                 "{role, content} (dpo: the conversation before the reply).")
    chosen_column: str = Field("chosen", description="dpo: the preferred reply (text).")
    rejected_column: str = Field("rejected", description="dpo: the dispreferred reply (text).")
    dpo_beta: float = Field(0.1, gt=0, description="dpo: how far the tuned model may move "
                            "from its reference (the model with the adapter off).")
    dpo_loss: Literal["sigmoid", "ipo", "hinge", "robust"] = Field(
        "sigmoid", description="dpo: TRL loss_type; sigmoid is the DPO paper's loss.")
    max_response_sentences: int | None = Field(
        None, ge=1, description="sft: cut every answer after this many sentences (at . ! ? "
        "and their Korean/full-width forms), so long essay answers teach the model to stop; "
        "the cut answers are counted.")
    system_prompt: str | None = Field(
        None, description="System prompt added to every conversation that has none "
        "(folded into the first user turn for Gemma)."
    )

    # classify columns
    text_column: str = Field("text", description="Classification input text.")
    label_column: str = Field("label", description="Label, by name or integer id.")
    labels: list[str] | None = Field(
        None, description="Label names in id order; inferred (sorted) from the data if unset."
    )
    class_weights: Literal["auto"] | list[float] | None = Field(
        None, description="Loss weights per class: auto (balanced) or one per label."
    )
    classifier: Literal["lora", "embedding-head", "embedding-svm", "encoder"] = Field(
        "lora", description="lora: causal LM + classification head; embedding-head: a linear "
        "head on frozen multilingual sentence embeddings (fast on CPU); embedding-svm: a "
        "binary RBF support-vector machine on the same embeddings (better on small data); "
        "encoder: the multilingual sentence encoder itself fine-tuned with a linear head "
        "(its upper layers; ships as a 13 MB delta; ~150-400 examples/s on 2 cores)."
    )
    svm_c: float = Field(3.0, gt=0, description="embedding-svm: inverse regularisation "
                         "strength (scikit-learn's C).")
    svm_ngrams: bool = Field(
        False, description="embedding-svm: also train a logistic regression on hashed word and "
        "character n-grams and stack the two scores (weights fitted on 5-fold out-of-fold "
        "scores of the training split); it reads the words a sentence embedding blurs.")
    svm_ngram_c: float = Field(16.0, gt=0, description="embedding-svm with svm_ngrams: inverse "
                               "regularisation strength of the n-gram model.")

    # -- method -------------------------------------------------------------------------
    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="qlora needs CUDA and bitsandbytes; falls back to lora on CPU."
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                 "up_proj", "down_proj"],
        description="Modules that get adapters; all-linear picks every linear layer.",
    )

    # -- optimisation -------------------------------------------------------------------
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    num_epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: epochs).")
    batch_size: int = Field(4, ge=1, description="Per device.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: str = Field("cosine", description="Any transformers scheduler name.")
    optim: str = Field("adamw_torch", description="Any transformers optimizer name, e.g. "
                       "paged_adamw_8bit on GPU.")
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(512, ge=8, description="Tokens; longer examples are truncated "
                            "and counted.")
    drop_long: bool = Field(False, description="sft: skip training conversations longer than "
                            "max_length instead of cutting them, so every example ends with "
                            "the end-of-turn token and the model learns to stop.")
    packing: bool = Field(False, description="sft: pack several conversations into each row "
                          "of up to max_length tokens, each attending only to itself "
                          "(block-diagonal attention, positions restart), so rows carry "
                          "almost no padding; batch_size then counts rows.")
    gradient_checkpointing: bool = Field(True, description="Less memory, ~20 % more compute.")
    chunked_loss: bool = Field(
        True, description="sft: compute logits only at answer tokens, in chunks (the 262k "
        "Gemma vocabulary otherwise dominates memory)."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on GPU, fp32 on CPU (bf16 is unusably slow there)."
    )
    seed: int = 42

    # -- evaluation and checkpoints -----------------------------------------------------
    eval_steps: int | None = Field(None, ge=1, description="Evaluate every N steps "
                                   "(default: each epoch).")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every N steps "
                                   "(default: with eval).")
    logging_steps: int = Field(10, ge=1)
    save_total_limit: int = Field(2, ge=1)
    eval_on_start: bool = Field(True, description="Evaluate the untrained model first, so "
                                "the curve shows where training started.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Evaluations without "
                                                "improvement before stopping.")
    metric_for_best_model: str | None = Field(
        None, description="Default: f1_weighted for classify, loss for sft; with "
        "behaviour_prompts also behaviour_stop_rate, behaviour_language_match (higher is "
        "better), behaviour_mean_tokens, behaviour_guard_violations, behaviour_links (lower)."
    )
    behaviour_prompts: str | None = Field(
        None, description="sft: JSONL of {\"messages\": [...]} or {\"prompt\": ...}; at each "
        "evaluation the model answers each greedily and eval_behaviour_* metrics (stop rate, "
        "tokens, language match, guard violations, links) are logged.")
    behaviour_max_tokens: int = Field(64, ge=1, description="sft: token limit of each "
                                      "behaviour reply; one that reaches it did not stop.")
    resume: bool = Field(False, description="Continue from the last checkpoint in output_dir.")
    init_adapter: str | None = Field(
        None, description="Start the LoRA from an earlier adapter (a PEFT folder such as "
        "runs/x/checkpoint-65) instead of fresh weights: a second stage on new data with its "
        "own schedule. The adapter's rank and target layers are kept; lora_r, lora_alpha and "
        "lora_target_modules are not used.")
    merge: bool = Field(False, description="Also write the adapter merged into the base.")
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Loggers: tensorboard, wandb, mlflow, ... (one name or a list; none or [] "
        "for no logger). Each must be installed; the dry run checks.")
    data_script: str | None = Field(
        None, description="The script that writes the data files (e.g. "
        "../scripts/build_crisis_data.py); named when they are missing.")

    # Folder of the recipe file: data paths are looked up in the working directory, then
    # there (set by load_recipe).
    _recipe_dir: Path | None = PrivateAttr(default=None)

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_logger(cls, value: Any) -> Any:
        if isinstance(value, str):  # report_to: wandb means the one-item list
            return [] if value.strip().lower() == "none" else [value]
        return value

    @field_validator("data_weights", "data_licences")
    @classmethod
    def _one_per_source(cls, values: list | None, info: ValidationInfo) -> list | None:
        data = info.data.get("data")  # absent when data itself was invalid
        sources = 1 if isinstance(data, str) else len(data or [])
        if values is not None and data is not None and len(values) != sources:
            raise ValueError(f"{info.field_name} has {len(values)} value(s) but data names "
                             f"{sources} source(s); give one per data file, in the same order")
        return values

    @model_validator(mode="after")
    def _check_task_fields(self) -> Recipe:
        explicit_weights = self.class_weights not in (None, "auto")
        if explicit_weights and self.labels and len(self.class_weights) != len(self.labels):
            raise ValueError(
                f"class_weights has {len(self.class_weights)} values but labels has "
                f"{len(self.labels)}"
            )
        if self.task == "sft" and self.prompt_columns and not self.response_column:
            raise ValueError("prompt_columns needs response_column (the answer column)")
        if self.packing and self.task != "sft":
            raise ValueError(f"packing is for task: sft; this recipe's task is {self.task}")
        for name in ("data_weights", "max_response_sentences", "behaviour_prompts"):
            if getattr(self, name) is not None and self.task != "sft":
                raise ValueError(f"{name} is for task: sft; this recipe's task is {self.task}")
        metric = (self.metric_for_best_model or "").removeprefix("eval_")
        if metric.startswith("behaviour_") and metric not in BEHAVIOUR_METRICS:
            raise ValueError(f"metric_for_best_model: '{metric}' is not a behaviour metric; "
                             f"known: {', '.join(BEHAVIOUR_METRICS)}")
        if metric.startswith("behaviour_") and not self.behaviour_prompts:
            raise ValueError(f"metric_for_best_model: {metric} needs behaviour_prompts (the "
                             "prompts it is measured on)")
        if self.svm_ngrams and self.classifier != "embedding-svm":
            raise ValueError("svm_ngrams stacks an n-gram model on classifier: embedding-svm; "
                             f"this recipe's classifier is {self.classifier}")
        return self

    @property
    def best_metric(self) -> str:
        return self.metric_for_best_model or ("f1_weighted" if self.task == "classify" else "loss")


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (loss, reply length, guard flags and
    links are better small)."""
    return metric.removeprefix("eval_") not in LOWER_IS_BETTER


FIELD_NAMES = tuple(Recipe.model_fields)


# Common short names people type for a key; difflib would pick a wrong neighbour for them
# (lr is closest to lora_r).
ALIASES = {"lr": "learning_rate", "epochs": "num_epochs", "bs": "batch_size",
           "batch": "batch_size", "steps": "max_steps", "grad_accum": "gradient_accumulation_steps",
           "rank": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
           "target_modules": "lora_target_modules", "max_seq_length": "max_length",
           "output": "output_dir", "base_model": "model", "warmup": "warmup_steps"}


def _closest(key: str) -> str:
    if key in ALIASES:
        return f" Did you mean '{ALIASES[key]}'?"
    match = difflib.get_close_matches(key, FIELD_NAMES, n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs, values parsed as YAML (so 3e-4, true, [a, b] all work)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MindwellError(
                f"Override '{pair}' is not key=value.", "Example: learning_rate=1e-4 max_steps=20"
            )
        overrides[key.strip()] = _yaml_value(value)
    return overrides


def _yaml_value(text: str) -> Any:
    if text == "":
        return None
    value = yaml.safe_load(text)
    if isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; numbers are what people mean.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_recipe(path: str | Path | None, overrides: list[str] | dict | None = None) -> Recipe:
    """Read a recipe file, apply overrides, and validate everything with clear messages."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as err:
            raise MindwellError(f"Cannot read the recipe {path}: {err.strerror}.") from err
        except yaml.YAMLError as err:
            raise MindwellError(f"The recipe {path} is not valid YAML: {err}") from err
        if not isinstance(values, dict):
            raise MindwellError(f"The recipe {path} must be a mapping of key: value.")
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    values.update(overrides or {})
    for key in values:
        if key not in FIELD_NAMES:
            raise MindwellError(
                f"Unknown recipe key '{key}'.{_closest(key)}",
                "Run `mindwell train --list-keys` for every key with its meaning.",
            )
    try:
        recipe = Recipe(**values)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'recipe'}: {e['msg']}" for e in err.errors()
        )
        raise MindwellError(f"Invalid recipe: {problems}.") from err
    if path is not None:
        from mindwell.train.data import resolve_recipe_paths

        resolve_recipe_paths(recipe, path.parent)
    return recipe


def describe_fields() -> str:
    lines = []
    for name, info in Recipe.model_fields.items():
        default = "required" if info.is_required() else repr(info.get_default(
            call_default_factory=True))
        lines.append(f"{name} (default {default}): {info.description or ''}".rstrip(": "))
    return "\n".join(lines)
