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
from mindwell.train.recipe import Recipe, greater_is_better

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


def report_to(recipe: Recipe) -> list[str]:
    """The loggers to use: each named one must be known and installed (a clear error, not
    transformers' RuntimeError mid-start); the default TensorBoard is dropped with a warning
    when it is absent."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    wanted = [name.strip().lower() for name in recipe.report_to if name.strip()]
    if wanted in (["none"], []):
        return []
    installed = get_available_reporting_integrations()
    if wanted == ["all"]:
        return installed
    explicit = "report_to" in recipe.model_fields_set
    unknown = [name for name in wanted if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(INTEGRATION_TO_CALLBACK), n=1)
        raise MindwellError(
            f"report_to: '{unknown[0]}' is not a logger transformers knows."
            + (f" Did you mean '{close[0]}'?" if close else ""),
            f"Known loggers: {', '.join(sorted(INTEGRATION_TO_CALLBACK))}; report_to: [] for "
            "none.")
    absent = [name for name in wanted if name not in installed]
    if absent and explicit:
        package = {"tensorboard": "tensorboard", "comet_ml": "comet-ml"}.get(absent[0],
                                                                            absent[0])
        others = [name for name in wanted if name not in absent]
        raise MindwellError(
            f"report_to: {', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not "
            f"installed here, so training could not log to {'it' if len(absent) == 1 else 'them'}.",
            f"Install it (pip install {package}) or leave it out: report_to: "
            f"[{', '.join(others)}] (the metrics CSV, loss plot and card are written anyway).")
    if absent:
        log.warning("TensorBoard is not installed; training without it (the metrics CSV, "
                    "loss plot and card are written anyway).")
    return [name for name in wanted if name not in absent]


def planned_steps(recipe: Recipe, train_examples: int | None) -> int | None:
    """Optimizer steps the run will take (None when the data size is unknown)."""
    if recipe.max_steps > 0:
        return recipe.max_steps
    if not train_examples:
        return None
    import math

    per_epoch = math.ceil(train_examples / recipe.batch_size / recipe.gradient_accumulation_steps)
    return math.ceil(per_epoch * recipe.num_epochs)


def recipe_warnings(recipe: Recipe, train_examples: int | None = None,
                    has_eval: bool | None = None) -> list[str]:
    """Settings that run but are probably not meant (``has_eval``: whether the run has
    validation rows, when known; else told from the recipe)."""
    warnings = []
    steps = planned_steps(recipe, train_examples)
    if steps is not None and recipe.warmup_steps > steps:
        warnings.append(
            f"warmup_steps={recipe.warmup_steps} is more than the {steps} optimizer steps "
            "this run takes: the learning rate never reaches learning_rate. Lower "
            "warmup_steps (or use warmup_ratio).")
    if has_eval is None:
        has_eval = bool(recipe.eval_data or recipe.split_column or recipe.validation_fraction)
    if recipe.behaviour_prompts and not has_eval:
        warnings.append("behaviour_prompts are answered at evaluations, and this run has no "
                        "validation rows, so it never evaluates and they are never answered: "
                        "give it validation data or leave behaviour_prompts out.")
    return warnings


def _licence_terms(licence: str) -> set[str]:
    """The licence's parts as words (CC-BY-NC-SA-4.0 -> cc, by, nc, sa, 4, 0), so NC is
    found in CC-BY-NC-4.0 but not in NCSA."""
    import re

    return set(re.split(r"[^a-z0-9]+", licence.lower()))


def licence_warnings(recipe: Recipe) -> list[str]:
    """A data source whose licence forbids commercial use (NC) or derivatives (ND), when the
    model's own licence is not non-commercial: the model would be offered on terms its data
    does not allow."""
    if not recipe.data_licences:
        return []
    sources = [recipe.data] if isinstance(recipe.data, str) else list(recipe.data)
    model_nc = recipe.model_licence is not None and "nc" in _licence_terms(recipe.model_licence)
    if model_nc:
        return []
    model = f"model_licence is {recipe.model_licence}, not non-commercial" if \
        recipe.model_licence else "model_licence is not set"
    warnings = []
    for source, licence in zip(sources, recipe.data_licences, strict=True):
        terms = _licence_terms(licence)
        kinds = [why for term, why in (("nc", "non-commercial"), ("nd", "no derivatives"))
                 if term in terms]
        if kinds:
            warnings.append(
                f"data {source} is licensed {licence} ({', '.join(kinds)}), but {model}: a "
                "model trained on it may only be used and shared on that licence's terms. "
                "Set model_licence to match (e.g. CC-BY-NC-4.0) or leave the source out.")
    return warnings


def training_arguments(recipe: Recipe, has_eval: bool, output_dir: Path,
                       resuming: bool = False):
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
        # A resumed run evaluated its start already (the row is in metrics.csv).
        eval_on_start=has_eval and recipe.eval_on_start and not resuming,
        save_strategy="steps" if save_steps else "epoch",
        save_steps=save_steps or 500,
        save_total_limit=recipe.save_total_limit,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=has_eval,
        metric_for_best_model=metric if has_eval else None,
        greater_is_better=None if not has_eval else greater_is_better(metric),
        prediction_loss_only=recipe.task == "sft",
        report_to=report_to(recipe),
        # Real (non-padding) tokens the optimizer steps see; kept across a resume.
        include_num_input_tokens_seen="non_padding" if recipe.task == "sft" else "no",
        # Resume restores early-stopping patience and the answer-token count too.
        restore_callback_states_from_checkpoint=True,
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
    from mindwell.train.data import require_data
    from mindwell.train.memory import TrimHeapCallback
    from mindwell.train.models import base_location, use_cuda
    from mindwell.train.report import plot_loss_curve, write_model_card

    transformers.logging.set_verbosity_warning()
    require_data(recipe)
    for warning in licence_warnings(recipe):
        log.warning(warning)
    if recipe.task != "classify" or recipe.classifier == "lora":
        report_to(recipe)  # a missing logger fails now, not after the model has loaded
    output_dir = Path(recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _last_checkpoint(output_dir) if recipe.resume else None
    if recipe.resume and resume_from is None:
        log.warning("resume=true but %s has no checkpoint; starting from scratch.", output_dir)
    elif resume_from is not None:
        log.info("Resuming from %s (its optimizer, schedule and data order).",
                 Path(resume_from).name)
    (output_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(), sort_keys=False))
    set_seed(recipe.seed)

    if recipe.task == "classify" and recipe.classifier == "embedding-head":
        return classify.train_embedding_head(recipe, output_dir)
    if recipe.task == "classify" and recipe.classifier == "embedding-svm":
        return classify.train_embedding_svm(recipe, output_dir)
    if recipe.task == "classify" and recipe.classifier == "encoder":
        return classify.train_encoder_classifier(recipe, output_dir)

    started = time.time()
    task = {"sft": sft_task, "dpo": dpo_task}.get(recipe.task, classify)
    prepared = task.prepare(recipe, base_location(recipe, output_dir))
    for warning in recipe_warnings(recipe, len(prepared.train_dataset),
                                   has_eval=prepared.eval_dataset is not None):
        log.warning(warning)
    args = training_arguments(recipe, prepared.eval_dataset is not None, output_dir,
                              resuming=resume_from is not None)
    metrics_csv = MetricsCSVCallback(output_dir / "metrics.csv")
    all_callbacks = [metrics_csv, *prepared.callbacks, *(callbacks or [])]
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
        metrics_csv.prefix = "best_model/"  # the best checkpoint, reloaded at the end
        metrics = trainer.evaluate()
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    prepared.tokenizer.save_pretrained(adapter_dir)
    _point_adapter_at_base(adapter_dir, recipe, output_dir)
    if recipe.merge:
        _save_merged(trainer.model, prepared.tokenizer, output_dir / "merged")

    history = trainer.state.log_history
    result = TrainResult(
        output_dir, metrics, history, prepared.truncated,
        prepared.examples or len(prepared.train_dataset),
        len(prepared.eval_dataset) if prepared.eval_dataset is not None else 0,
    )
    summary = {
        "metrics": metrics,
        "train_examples": result.train_examples,
        "eval_examples": result.eval_examples,
        "truncated_examples": result.truncated,
        "dropped_long_examples": prepared.dropped,
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_seconds": round(time.time() - started, 1),
        **prepared.extra_summary,
        **_tokens_seen(trainer),
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_loss_curve(history, output_dir / "loss_curve.png", recipe.best_metric)
    write_model_card(recipe, summary, output_dir / "README.md")
    return result


def _tokens_seen(trainer) -> dict:
    """Tokens the optimizer steps saw (padding excluded), resumed steps included."""
    from mindwell.train.callbacks import AnswerTokenCounter

    seen = {}
    if trainer.args.include_num_input_tokens_seen != "no":
        seen["train_tokens"] = int(trainer.state.num_input_tokens_seen)
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, AnswerTokenCounter):
            seen["train_answer_tokens"] = callback.answer_tokens
    return seen


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


@dataclass
class Plan:
    """What a dry run found: lines describing the run, and problems that would stop it."""

    lines: list[str] = field(default_factory=list)
    problems: list[MindwellError] = field(default_factory=list)

    def error(self) -> MindwellError | None:
        if not self.problems:
            return None
        if len(self.problems) == 1:
            return MindwellError("Dry run: " + self.problems[0].message, self.problems[0].hint)
        listed = "\n".join(f"  - {p.message}" + (f" {p.hint}" if p.hint else "")
                           for p in self.problems)
        return MindwellError(f"Dry run: {len(self.problems)} problems would stop this run:\n"
                             + listed, "Nothing was trained; fix these and run it again.")


def plan(recipe: Recipe, check_data: bool = True) -> Plan:
    """Validate what can be checked without loading weights: the model's layers against
    lora_target_modules, the loggers against what is installed, every data file and its
    columns. A file that is missing is a problem, never a silent pass."""
    from mindwell.train.data import (
        is_hub_name,
        load_table,
        missing_data,
        require_columns,
        sample_rows,
    )
    from mindwell.train.models import (
        TINY_MODEL,
        effective_method,
        init_adapter_problem,
        layer_names,
        target_module_problem,
    )

    method = effective_method(recipe)
    how = recipe.classifier if recipe.task == "classify" and recipe.classifier != "lora" \
        else method
    result = Plan([f"task {recipe.task} on {recipe.model} with {how}"])
    lines, problems = result.lines, result.problems
    if recipe.model != TINY_MODEL:
        from mindwell.models.registry import EMBEDDED, resolve

        names = {spec.name for spec in EMBEDDED}
        resolved = resolve(recipe.model) if recipe.model in names or Path(
            recipe.model).exists() else None
        lines.append(f"model: {resolved.path if resolved else recipe.model + ' (hub id)'}")

    uses_lora = method != "full" and (
        recipe.task != "classify" or recipe.classifier == "lora")
    if uses_lora and recipe.init_adapter:
        problem = init_adapter_problem(recipe.init_adapter)
        if problem is not None:
            problems.append(problem)
        else:
            config = json.loads((Path(recipe.init_adapter) / "adapter_config.json").read_text())
            lines.append(f"init_adapter: {recipe.init_adapter} (r={config.get('r')}, base "
                         f"{config.get('base_model_name_or_path')}): the LoRA starts there")
    elif uses_lora:
        targets = recipe.lora_target_modules
        try:
            modules, why = layer_names(recipe)
        except MindwellError as err:
            problems.append(err)
            modules, why = None, "the model could not be resolved"
        if modules is None:
            lines.append(f"lora_target_modules: not checked: {why}")
        else:
            problem = target_module_problem(targets, modules, recipe.model)
            if problem is not None:
                problems.append(problem)
            else:
                shown = targets if isinstance(targets, str) else ", ".join(targets)
                lines.append(f"lora_target_modules: {shown}: ok, each matches layers of the "
                             "model")
    if recipe.task != "classify" or recipe.classifier == "lora":
        try:
            loggers = report_to(recipe)
            lines.append(f"report_to: {', '.join(loggers)} (installed)" if loggers
                         else "report_to: none")
        except MindwellError as err:
            problems.append(err)

    missing = {m.source: m for m in missing_data(recipe)}
    data = [recipe.data] if isinstance(recipe.data, str) else recipe.data
    # (source, its data_weights entry or None); eval_data is never mixed.
    sources = list(zip(data, recipe.data_weights or [None] * len(data), strict=True))
    sources += [(recipe.eval_data, None)] if recipe.eval_data else []
    rows = 0
    for source, weight in sources:
        if source in missing:
            lines.append(f"data: {source}: MISSING, columns not checked")
            problems.append(MindwellError(missing[source].message, missing[source].hint))
            continue
        if is_hub_name(source) or not check_data:
            why = "hub data set, not checked offline" if is_hub_name(source) else "not checked"
            lines.append(f"data: {source} ({why})")
            continue
        table = load_table(source)
        if recipe.task == "classify":
            needed = [recipe.text_column, recipe.label_column]
        elif recipe.task == "dpo":
            needed = [recipe.messages_column, recipe.chosen_column, recipe.rejected_column]
        elif recipe.response_column:
            needed = [*recipe.prompt_columns, recipe.response_column]
        else:
            needed = [recipe.messages_column]
        needed += [c for c in (recipe.split_column, recipe.group_column) if c]
        require_columns(table, needed, source)
        used = len(table) if weight is None else len(sample_rows(len(table), weight, 0))
        rows += used if source != recipe.eval_data else 0
        mixed = "" if weight is None else f"; data_weights x{weight:g}: {used} rows in the mix"
        lines.append(f"data: {source}: {len(table)} rows, columns ok ({', '.join(needed)})"
                     + mixed)
    if recipe.behaviour_prompts and not check_data:
        lines.append(f"behaviour_prompts: {recipe.behaviour_prompts} (not checked)")
    elif recipe.behaviour_prompts:
        from mindwell.train.behaviour import read_behaviour_prompts

        try:
            prompts = read_behaviour_prompts(recipe.behaviour_prompts)
            lines.append(f"behaviour_prompts: {recipe.behaviour_prompts}: {len(prompts)} "
                         f"prompts, ok (answered at each evaluation, up to "
                         f"{recipe.behaviour_max_tokens} tokens)")
        except MindwellError as err:
            state = "not usable" if Path(recipe.behaviour_prompts).is_file() else "MISSING"
            lines.append(f"behaviour_prompts: {recipe.behaviour_prompts}: {state}")
            problems.append(err)
    if recipe.data_licences:
        lines.append("data_licences: " + ", ".join(
            f"{source} {licence}" for source, licence in zip(data, recipe.data_licences,
                                                              strict=True))
            + f"; model_licence: {recipe.model_licence or 'not set'}")
    lines += [f"warning: {w}" for w in licence_warnings(recipe)]
    if recipe.task != "classify" or recipe.classifier == "lora":
        # The row count is an upper bound on training examples (before the split).
        lines += [f"warning: {w}" for w in recipe_warnings(recipe, rows or None)]
    output = Path(recipe.output_dir).expanduser()
    lines.append(f"output: {recipe.output_dir}" + ("" if output.is_absolute() else
                                                   f" (here: {output.resolve()})"))
    return result


def dry_run(recipe: Recipe, check_data: bool = True) -> list[str]:
    """The plan's lines; a MindwellError naming every problem when there is one."""
    result = plan(recipe, check_data)
    error = result.error()
    if error is not None:
        raise error
    return result.lines
