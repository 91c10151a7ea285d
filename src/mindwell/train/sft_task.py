"""The `sft` task: counseling conversations with loss on the assistant's words only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import DataCollatorForSeq2Seq, Trainer

from mindwell.errors import MindwellError
from mindwell.train.behaviour import BehaviourProbe, read_behaviour_prompts
from mindwell.train.callbacks import AnswerTokenCounter
from mindwell.train.data import data_name, recipe_tables, require_columns
from mindwell.train.losses import chunked_lm_loss
from mindwell.train.models import load_model
from mindwell.train.recipe import Recipe
from mindwell.train.sft import (
    cut_answers,
    normalise_conversation,
    row_to_messages,
    tokenize_conversation,
)

log = logging.getLogger("mindwell.train")


@dataclass
class Prepared:
    """Everything the Trainer needs, built from a recipe."""

    model: object
    tokenizer: object
    train_dataset: object
    eval_dataset: object | None
    collator: object
    trainer_class: type = Trainer
    compute_metrics: object = None
    truncated: int = 0  # longer than max_length and cut
    dropped: int = 0  # longer than max_length and left out (drop_long)
    trainer_kwargs: dict = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    examples: int | None = None  # training examples, when rows are not examples (packing)
    extra_summary: dict = field(default_factory=dict)


class SFTTrainer(Trainer):
    """Trainer whose loss projects only answer tokens onto the vocabulary, in chunks."""

    def __init__(self, *args, chunked_loss: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunked_loss = chunked_loss
        # compute_loss below normalises by the token count of the whole accumulated batch,
        # so the Trainer must pass it in and must not divide again.
        self.model_accepts_loss_kwargs = True

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Looked up each time: on resume the Trainer replaces the counter with the one
        # restored from the checkpoint.
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, AnswerTokenCounter):
                callback.answer_tokens += int((inputs["labels"] != -100).sum())
        return super().training_step(model, inputs, num_items_in_batch)

    def evaluation_loop(self, *args, **kwargs):
        # The behaviour scores join the loss here, before evaluate() logs the metrics, so
        # they reach metrics.csv, the history and the choice of the best checkpoint.
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, BehaviourProbe):
                scores = callback.measure(self.model, self.state.global_step)
                output.metrics.update({f"{prefix}_{k}": v for k, v in scores.items()})
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Packed rows carry position_ids and no attention mask: transformers then builds a
        # block-diagonal causal mask from the restarting positions (no cache may be used).
        attention = ({"position_ids": inputs["position_ids"], "use_cache": False}
                     if "position_ids" in inputs else {"attention_mask": inputs["attention_mask"]})
        if not self.chunked_loss:
            inputs = {**inputs, "use_cache": False} if "position_ids" in inputs else inputs
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        causal_lm = getattr(causal_lm, "module", causal_lm)  # unwrapped under DDP
        hidden = causal_lm.model(input_ids=inputs["input_ids"], **attention).last_hidden_state
        softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
        mean, count = chunked_lm_loss(hidden, inputs["labels"], causal_lm.lm_head.weight, softcap)
        loss = mean * count / num_items_in_batch if num_items_in_batch else mean
        return (loss, {"loss": loss}) if return_outputs else loss


def conversations(recipe: Recipe, table, source: str) -> list[list[dict]]:
    if recipe.response_column:
        require_columns(table, [*recipe.prompt_columns, recipe.response_column], source)
        rows = (row_to_messages(row, recipe.prompt_columns, recipe.response_column)
                for row in table)
    else:
        require_columns(table, [recipe.messages_column], source)
        rows = (row[recipe.messages_column] for row in table)
    return [normalise_conversation(list(m), recipe.system_prompt) for m in rows]


def tokenize_all(recipe: Recipe, tokenizer, template, convs,
                 drop_long: bool = False) -> tuple[object, int]:
    """Tokenized examples and how many were longer than max_length (cut, or with
    ``drop_long`` skipped)."""
    from datasets import Dataset

    examples, truncated = [], 0
    for messages in convs:
        item = tokenize_conversation(tokenizer, template, messages, recipe.max_length)
        if item is None:
            continue
        truncated += item.truncated
        if item.truncated and drop_long:
            continue
        examples.append({"input_ids": item.input_ids, "labels": item.labels,
                         "attention_mask": [1] * len(item.input_ids)})
    if not examples and drop_long and truncated:
        raise MindwellError(f"Every conversation is longer than max_length={recipe.max_length} "
                            "tokens, so drop_long left none.",
                            "Raise max_length or set drop_long: false.")
    if not examples:
        raise MindwellError("No conversation has an assistant answer to learn from.",
                            "Check response_column or the roles in the messages.")
    return Dataset.from_list(examples), truncated


def pack(examples, max_length: int):
    """Rows of up to ``max_length`` tokens holding whole conversations (best-fit decreasing:
    each conversation, longest first, goes to the fullest row it fits in). Each row keeps
    its conversations' labels and restarts position_ids at 0 for each one; a conversation's
    first token is BOS, labelled -100, so no loss crosses a boundary."""
    from datasets import Dataset

    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    free: list[int] = []
    for index in order:
        size = len(examples[index]["input_ids"])
        fits = [r for r in range(len(rows)) if free[r] >= size]
        if fits:
            best = min(fits, key=lambda r: free[r])
            rows[best].append(index)
            free[best] -= size
        else:
            rows.append([index])
            free.append(max_length - size)
    packed = []
    for members in rows:
        row = {"input_ids": [], "labels": [], "position_ids": []}
        for index in sorted(members):  # file order inside a row
            ids = examples[index]["input_ids"]
            row["input_ids"] += ids
            row["labels"] += examples[index]["labels"]
            row["position_ids"] += list(range(len(ids)))
        packed.append(row)
    return Dataset.from_list(packed)


class PackedCollator:
    """Pads packed rows to the batch's longest: pad ids, labels -100, and positions that go
    on counting (the padding sits after every real token, so causal attention keeps it out
    of what they see). An unpacked row (the validation set) is one conversation."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(row["input_ids"]) for row in rows)
        batch = {"input_ids": [], "labels": [], "position_ids": []}
        for row in rows:
            extra = width - len(row["input_ids"])
            positions = list(row.get("position_ids") or range(len(row["input_ids"])))
            last = positions[-1] + 1
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * extra)
            batch["labels"].append(list(row["labels"]) + [-100] * extra)
            batch["position_ids"].append(positions + list(range(last, last + extra)))
        return {key: torch.tensor(value) for key, value in batch.items()}


def prepare(recipe: Recipe, location: str) -> Prepared:
    from mindwell.inference.hf import template_for_tokenizer

    mix: list[dict] = []
    _, train_rows, eval_rows = recipe_tables(recipe, mix=mix)
    train_convs = conversations(recipe, train_rows, data_name(recipe.data))
    eval_convs = conversations(recipe, eval_rows, recipe.eval_data or data_name(recipe.data)) if (
        eval_rows is not None and len(eval_rows)) else None
    # Validation answers are cut too, so the validation loss measures the same targets.
    limit = recipe.max_response_sentences
    train_convs, cut, answers = cut_answers(train_convs, limit)
    eval_convs, eval_cut, _ = cut_answers(eval_convs or [], limit)
    if limit:
        log.info("max_response_sentences=%d cut %d of %d training answers (and %d validation "
                 "answers).", limit, cut, answers, eval_cut)
    for used in mix:
        log.info("data_weights: %s gives %d of its %d rows (x%g).", used["source"],
                 used["rows"], used["of"], used["weight"])
    # Read before the model loads, so a bad prompts file fails fast.
    prompts = read_behaviour_prompts(recipe.behaviour_prompts) if recipe.behaviour_prompts \
        else None

    model, tokenizer = load_model(recipe, location)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    template = template_for_tokenizer(tokenizer, config.model_type, None)
    train_ds, truncated = tokenize_all(recipe, tokenizer, template, train_convs,
                                       drop_long=recipe.drop_long)
    eval_ds = tokenize_all(recipe, tokenizer, template, eval_convs)[0] if eval_convs else None
    probe = [BehaviourProbe(prompts, tokenizer, template, recipe.system_prompt,
                            recipe.behaviour_max_tokens)] if prompts else []
    dropped = truncated if recipe.drop_long else 0
    if truncated and recipe.drop_long:
        log.warning("%d training conversations were longer than max_length=%d tokens and were "
                    "left out (drop_long); %d remain.", truncated, recipe.max_length,
                    len(train_ds))
    elif truncated:
        log.warning("%d of %d training conversations were longer than max_length=%d tokens "
                    "and were truncated.", truncated, len(train_ds), recipe.max_length)
    labelled = sum(sum(label != -100 for label in row) for row in train_ds["labels"])
    total = sum(len(row) for row in train_ds["input_ids"])
    conversations_count = len(train_ds)
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    packing = {}
    if recipe.packing:
        train_ds = pack(train_ds, recipe.max_length)
        collator = PackedCollator(tokenizer.pad_token_id)
        packing = {"packed_rows": len(train_ds),
                   "conversations_per_row": round(conversations_count / len(train_ds), 2)}
        log.info("Packed %d conversations into %d rows of up to %d tokens (%.1f a row, "
                 "%.0f %% of the rows' tokens used).", conversations_count, len(train_ds),
                 recipe.max_length, conversations_count / len(train_ds),
                 100 * total / (len(train_ds) * recipe.max_length))
    return Prepared(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        # Dynamic padding: each batch is padded to its own longest example (or packed row),
        # never to max_length; labels are padded with -100 so padding adds nothing to the
        # loss.
        collator=collator,
        trainer_class=SFTTrainer,
        truncated=truncated - dropped,
        dropped=dropped,
        examples=conversations_count,
        trainer_kwargs={"chunked_loss": recipe.chunked_loss},
        callbacks=[AnswerTokenCounter(), *probe],
        # What the training set holds; what the steps saw (fewer with max_steps, more with
        # several epochs) is counted while training (train_tokens, train_answer_tokens).
        extra_summary={"template": template.name, "data_tokens": total,
                       "data_answer_tokens": labelled, **packing,
                       **({"cut_responses": cut, "eval_cut_responses": eval_cut,
                           "responses": answers} if limit else {}),
                       **({"data_mix": mix} if mix else {}),
                       **({"behaviour_prompts": len(prompts)} if prompts else {})},
    )
