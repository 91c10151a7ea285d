"""What a run leaves for people: a loss-curve plot and a model card."""

from __future__ import annotations

from pathlib import Path

import yaml

from mindwell.train.data import data_name
from mindwell.train.recipe import Recipe


def plot_loss_curve(history: list[dict], path: Path, best_metric: str = "loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    metric_key = f"eval_{best_metric}"
    scores = [(h["step"], h[metric_key]) for h in history
              if metric_key in h and best_metric != "loss"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if scores:
        twin = ax.twinx()
        twin.plot(*zip(*scores, strict=True), color="tab:green", marker="s",
                  label=f"validation {best_metric}")
        twin.set_ylabel(best_metric)
        more_handles, more_names = twin.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    ax.legend(handles, names, loc="best", framealpha=0.9)
    ax.set_title("mindwell training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def data_lines(recipe: Recipe, summary: dict) -> str:
    """The card's lines on how the data was mixed, cut and licensed (each only when the
    recipe asks for it)."""
    lines = []
    if summary.get("data_mix"):
        lines.append("Mixed by data_weights before the split: " + "; ".join(
            f"`{m['source']}` {m['rows']} rows of {m['of']} (x{m['weight']:g})"
            for m in summary["data_mix"]) + ".")
    if recipe.max_response_sentences and "cut_responses" in summary:
        limit = recipe.max_response_sentences
        lines.append(f"Answers cut after {limit} sentence{'s' if limit > 1 else ''} "
                     f"(max_response_sentences): {summary['cut_responses']} of "
                     f"{summary['responses']} training answers, "
                     f"{summary['eval_cut_responses']} validation answers.")
    if recipe.data_licences:
        sources = [recipe.data] if isinstance(recipe.data, str) else recipe.data
        lines.append("Data licences: " + "; ".join(
            f"`{source}`: {licence}" for source, licence in zip(sources, recipe.data_licences,
                                                               strict=True))
                     + f". Model licence: {recipe.model_licence or 'not stated'}.")
        from mindwell.train.runner import licence_warnings

        lines += [f"**Licence warning:** {w}" for w in licence_warnings(recipe)]
    if recipe.behaviour_prompts:
        lines.append(f"Behaviour prompts: `{recipe.behaviour_prompts}` "
                     f"({summary.get('behaviour_prompts', '?')} prompts answered greedily at "
                     f"each evaluation, up to {recipe.behaviour_max_tokens} tokens; "
                     "`behaviour_*` below).")
    return "".join(f"\n- {line}" for line in lines)


def write_model_card(recipe: Recipe, summary: dict, path: Path) -> None:
    metrics = summary.get("metrics") or {}
    metric_rows = "\n".join(
        f"| {k.removeprefix('eval_')} | {v:.4f} |" for k, v in metrics.items()
        if isinstance(v, float) and not k.endswith(("runtime", "per_second", "epoch"))
    ) or "| (no validation data) | |"
    if recipe.split_column:
        split = f"column `{recipe.split_column}`"
    else:
        split = f"{recipe.validation_fraction:.0%} held out" + (
            f", grouped by `{recipe.group_column}`" if recipe.group_column else "")
    use = ("a supportive counseling chat model" if recipe.task == "sft"
           else f"a text classifier over {summary.get('labels')}")
    data = data_name(recipe.data)
    long_examples = []
    if summary.get("dropped_long_examples"):
        long_examples.append(f"{summary['dropped_long_examples']} longer than "
                             f"{recipe.max_length} tokens dropped (drop_long)")
    if summary.get("truncated_examples") or not long_examples:
        long_examples.append(f"{summary.get('truncated_examples', 0)} truncated at "
                             f"{recipe.max_length} tokens")
    seen = ""
    if summary.get("train_tokens") is not None:
        seen = (f"\n- The {summary.get('global_step')} optimizer steps saw "
                f"{summary['train_tokens']:,} tokens (padding excluded)"
                + (f", {summary['train_answer_tokens']:,} of them answer tokens with a loss"
                   if summary.get("train_answer_tokens") is not None else "") + ".")
    # Hub metadata spells licence ids in lower case (cc-by-nc-4.0, apache-2.0).
    licence_tag = f"\nlicense: {recipe.model_licence.lower()}" if recipe.model_licence else ""
    card = f"""---
base_model: {recipe.model}{licence_tag}
library_name: {"peft" if recipe.method != "full" else "transformers"}
tags: [mindwell, {recipe.task}, {recipe.method}]
---
# {Path(recipe.output_dir).name}

Trained with `mindwell train` as {use}.

## Base model and data
- Base model: `{recipe.model}` (its own licence applies to these weights, e.g. the Gemma
  Terms of Use for Gemma models).
- Data: `{data}`{f" (validation: `{recipe.eval_data}`)" if recipe.eval_data else ""}:
  {summary.get("train_examples")} training and {summary.get("eval_examples")} validation examples,
  {", ".join(long_examples)}.{data_lines(recipe, summary)}
- Split: {split}, seed {recipe.seed}.{seen}

## Validation metrics

| metric | value |
|---|---|
{metric_rows}

## Hyperparameters

```yaml
{yaml.safe_dump(recipe.model_dump(), sort_keys=False).strip()}
```

## Intended use and limits
For research and for supportive, non-clinical companions built with mindwell. It is not a
therapist and not a diagnostic tool: it can be wrong, it does not know the person, and it
must run behind mindwell's safety layer, which answers crisis messages with helplines
instead of model output. Validation numbers come from the split above and may not hold on
other populations, platforms or languages.
"""
    path.write_text(card)
