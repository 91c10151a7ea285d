"""`mindwell train`: one recipe in, a trained adapter with its metrics, plot and card out.

Built on the transformers Trainer (checkpointing, resume, gradient accumulation, schedules,
early stopping, TensorBoard, and accelerate/torchrun for several GPUs come with it).
mindwell adds the data handling, assistant-only labels, the chunked loss, class weights,
the metrics CSV, the loss curve and the model card.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mindwell.errors import MindwellError
from mindwell.train.recipe import Recipe

log = logging.getLogger("mindwell.train")


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    truncated: int = 0
    train_examples: int = 0
    eval_examples: int = 0


def _last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.exists() else None


def training_arguments(recipe: Recipe, has_eval: bool, output_dir: Path):
    import torch
    from transformers import TrainingArguments

    arguments_class, extra = TrainingArguments, {}
    if recipe.task == "dpo":
        from trl import DPOConfig

        arguments_class = DPOConfig
        extra = {"beta": recipe.dpo_beta, "loss_type": [recipe.dpo_loss],
                 "max_length": recipe.max_length}

    from mindwell.train.models import compute_dtype, use_cuda

    strategy = "steps" if recipe.eval_steps else "epoch"
    save_steps = recipe.save_steps or recipe.eval_steps
    if has_eval and recipe.save_steps and recipe.eval_steps and (
        recipe.save_steps % recipe.eval_steps
    ):
        raise MindwellError(
            "save_steps must be a multiple of eval_steps so the best checkpoint can be kept.",
            f"Got save_steps={recipe.save_steps}, eval_steps={recipe.eval_steps}.",
        )
    metric = recipe.best_metric
    return arguments_class(
        output_dir=str(output_dir),
        seed=recipe.seed,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        num_train_epochs=recipe.num_epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        warmup_steps=recipe.warmup_steps or recipe.warmup_ratio,
        lr_scheduler_type=recipe.lr_scheduler,
        optim=recipe.optim,
        max_grad_norm=recipe.max_grad_norm,
        activation_checkpointing=recipe.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        bf16=compute_dtype(recipe) == torch.bfloat16 and use_cuda(),
        eval_strategy=strategy if has_eval else "no",
        eval_steps=recipe.eval_steps,
        eval_on_start=has_eval and recipe.eval_on_start,
        save_strategy="steps" if save_steps else "epoch",
        save_steps=save_steps or 500,
        save_total_limit=recipe.save_total_limit,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=has_eval,
        metric_for_best_model=metric if has_eval else None,
        greater_is_better=None if not has_eval else metric != "loss",
        prediction_loss_only=recipe.task == "sft",
        report_to=recipe.report_to,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not use_cuda(),
        disable_tqdm=False,
        **extra,
    )


def train(recipe: Recipe, callbacks: list | None = None) -> TrainResult:
    """Run a recipe end to end and return what it produced."""
    import transformers
    from transformers import EarlyStoppingCallback, set_seed

    from mindwell.train import classify, dpo_task, sft_task
    from mindwell.train.callbacks import MetricsCSVCallback
    from mindwell.train.memory import TrimHeapCallback
    from mindwell.train.models import base_location, use_cuda
    from mindwell.train.report import plot_loss_curve, write_model_card

    transformers.logging.set_verbosity_warning()
    output_dir = Path(recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _last_checkpoint(output_dir) if recipe.resume else None
    if recipe.resume and resume_from is None:
        log.warning("resume=true but %s has no checkpoint; starting from scratch.", output_dir)
    (output_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(), sort_keys=False))
    set_seed(recipe.seed)

    if recipe.task == "classify" and recipe.classifier == "embedding-head":
        return classify.train_embedding_head(recipe, output_dir)
    if recipe.task == "classify" and recipe.classifier == "embedding-svm":
        return classify.train_embedding_svm(recipe, output_dir)

    started = time.time()
    task = {"sft": sft_task, "dpo": dpo_task}.get(recipe.task, classify)
    prepared = task.prepare(recipe, base_location(recipe, output_dir))
    args = training_arguments(recipe, prepared.eval_dataset is not None, output_dir)
    all_callbacks = [MetricsCSVCallback(output_dir / "metrics.csv"), *(callbacks or [])]
    if not use_cuda():
        all_callbacks.append(TrimHeapCallback())
    if recipe.early_stopping_patience and prepared.eval_dataset is not None:
        all_callbacks.append(EarlyStoppingCallback(recipe.early_stopping_patience))
    trainer = prepared.trainer_class(
        model=prepared.model,
        args=args,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset,
        data_collator=prepared.collator,
        processing_class=prepared.tokenizer,
        compute_metrics=prepared.compute_metrics,
        callbacks=all_callbacks,
        **prepared.trainer_kwargs,
    )
    trainer.train(resume_from_checkpoint=resume_from)

    metrics = {}
    if prepared.eval_dataset is not None:
        metrics = trainer.evaluate()
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    prepared.tokenizer.save_pretrained(adapter_dir)
    _point_adapter_at_base(adapter_dir, recipe, output_dir)
    if recipe.merge:
        _save_merged(trainer.model, prepared.tokenizer, output_dir / "merged")

    history = trainer.state.log_history
    result = TrainResult(
        output_dir, metrics, history, prepared.truncated, len(prepared.train_dataset),
        len(prepared.eval_dataset) if prepared.eval_dataset is not None else 0,
    )
    summary = {
        "metrics": metrics,
        "train_examples": result.train_examples,
        "eval_examples": result.eval_examples,
        "truncated_examples": result.truncated,
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_seconds": round(time.time() - started, 1),
        **prepared.extra_summary,
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_loss_curve(history, output_dir / "loss_curve.png", recipe.best_metric)
    write_model_card(recipe, summary, output_dir / "README.md")
    return result


def _point_adapter_at_base(adapter_dir: Path, recipe: Recipe, output_dir: Path) -> None:
    """Record the base by registry name or hub id, not a cache path, so the adapter loads
    on another machine; the tiny model's base is saved beside the run."""
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        return  # full fine-tuning saved a whole model
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = (
        str((output_dir / "base").resolve()) if recipe.model == "tiny-gemma" else recipe.model
    )
    config_path.write_text(json.dumps(config, indent=2))


def _save_merged(model, tokenizer, target: Path) -> None:
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def dry_run(recipe: Recipe, check_data: bool = True) -> list[str]:
    """Validate what can be checked without loading weights; lines describing the plan."""
    from mindwell.train.data import load_table, require_columns
    from mindwell.train.models import TINY_MODEL, effective_method

    lines = [f"task {recipe.task} on {recipe.model} with {effective_method(recipe)}"]
    if recipe.model != TINY_MODEL:
        from mindwell.models.registry import EMBEDDED, resolve

        names = {spec.name for spec in EMBEDDED}
        resolved = resolve(recipe.model) if recipe.model in names or Path(
            recipe.model).exists() else None
        lines.append(f"model: {resolved.path if resolved else recipe.model + ' (hub id)'}")
    data = [recipe.data] if isinstance(recipe.data, str) else recipe.data
    sources = [s for s in (*data, recipe.eval_data) if s]
    for source in sources:
        local = Path(source).expanduser()
        if not check_data or not local.exists():
            why = "hub name, not checked" if not local.suffix else "absent here, not checked"
            lines.append(f"data: {source} ({why})")
            continue
        table = load_table(source)
        if recipe.task == "classify":
            needed = [recipe.text_column, recipe.label_column]
        elif recipe.response_column:
            needed = [*recipe.prompt_columns, recipe.response_column]
        else:
            needed = [recipe.messages_column]
        needed += [c for c in (recipe.split_column, recipe.group_column) if c]
        require_columns(table, needed, source)
        lines.append(f"data: {source}: {len(table)} rows, columns ok ({', '.join(needed)})")
    lines.append(f"output: {recipe.output_dir}")
    return lines
