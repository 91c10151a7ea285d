"""The `dpo` task: preference tuning of a chat model with TRL's DPOTrainer.

Each row is a conversation that ends with the person's turn, a chosen reply (e.g. the
corpus counselor's) and a rejected one (e.g. the base model's own reply to the same
conversation). The adapter is trained so the chosen reply becomes more likely than the
rejected one relative to the reference, which is the same model with the adapter switched
off, so no second copy of the model is held in memory. Data, template, system prompt and
adapter handling are mindwell's as for `sft`; the loss is TRL's.
"""

from __future__ import annotations

from mindwell.errors import MindwellError
from mindwell.train.data import data_name, recipe_tables, require_columns
from mindwell.train.models import load_model
from mindwell.train.recipe import Recipe
from mindwell.train.sft import normalise_conversation
from mindwell.train.sft_task import Prepared


def preference_rows(recipe: Recipe, table, source: str) -> list[dict]:
    """Rows in TRL's conversational preference format."""
    require_columns(table, [recipe.messages_column, recipe.chosen_column,
                            recipe.rejected_column], source)
    rows = []
    for index, row in enumerate(table):
        prompt = normalise_conversation(list(row[recipe.messages_column] or []),
                                        recipe.system_prompt)
        chosen, rejected = row[recipe.chosen_column], row[recipe.rejected_column]
        if not prompt or prompt[-1]["role"] != "user":
            raise MindwellError(f"Row {index} of '{source}': the conversation must end with "
                                "the person's turn (the replies follow it).",
                                f"Check the '{recipe.messages_column}' column.")
        if not (isinstance(chosen, str) and chosen.strip() and isinstance(rejected, str)
                and rejected.strip()):
            raise MindwellError(f"Row {index} of '{source}' has an empty or non-text chosen "
                                "or rejected reply.", "Both replies must be non-empty text.")
        rows.append({"prompt": prompt,
                     "chosen": [{"role": "assistant", "content": chosen.strip()}],
                     "rejected": [{"role": "assistant", "content": rejected.strip()}]})
    return rows


def prepare(recipe: Recipe, location: str) -> Prepared:
    from datasets import Dataset
    from trl import DPOTrainer

    from mindwell.inference.hf import template_for_tokenizer

    _, train_rows, eval_rows = recipe_tables(recipe)
    train = preference_rows(recipe, train_rows, data_name(recipe.data))
    evaluation = preference_rows(recipe, eval_rows, recipe.eval_data or data_name(
        recipe.data)) if eval_rows is not None and len(eval_rows) else None
    model, tokenizer = load_model(recipe, location)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    # TRL renders with the tokenizer's template: give it the one mindwell serves with (the
    # Gemma GGUF carries none).
    tokenizer.chat_template = template_for_tokenizer(tokenizer, config.model_type, None).source
    return Prepared(
        model=model,
        tokenizer=tokenizer,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(evaluation) if evaluation else None,
        collator=None,  # TRL pads chosen and rejected pairs itself
        trainer_class=DPOTrainer,
        extra_summary={"preference_pairs": len(train)},
    )
