import pytest

from mindwell.inference.templates import GEMMA
from mindwell.models.tiny import build_tiny_tokenizer
from mindwell.train.sft import (
    IGNORE_INDEX,
    normalise_conversation,
    row_to_messages,
    tokenize_conversation,
)

CONVERSATION = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "I feel lonely."},
    {"role": "assistant", "content": "That sounds hard."},
    {"role": "user", "content": "Yes."},
    {"role": "assistant", "content": "Tell me more."},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_only_assistant_turns_and_their_end_of_turn_carry_labels(tokenizer):
    item = tokenize_conversation(tokenizer, GEMMA, CONVERSATION, max_length=512)
    labelled = [t for t in item.labels if t != IGNORE_INDEX]
    text = tokenizer.decode(labelled)
    assert text == "That sounds hard.<end_of_turn>\nTell me more.<end_of_turn>\n"
    prompt_part = tokenizer.decode(
        [t for t, label in zip(item.input_ids, item.labels, strict=True) if label == IGNORE_INDEX]
    )
    for hidden in ("Be kind.", "I feel lonely.", "Yes.", "<start_of_turn>model"):
        assert hidden in prompt_part
    assert item.input_ids.count(tokenizer.bos_token_id) == 1


def test_truncation_is_reported_and_prompt_only_examples_are_dropped(tokenizer):
    long = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "word " * 200}]
    item = tokenize_conversation(tokenizer, GEMMA, long, max_length=32)
    assert item.truncated and len(item.input_ids) == 32
    late = [{"role": "user", "content": "word " * 200},
            {"role": "assistant", "content": "ok"}]
    assert tokenize_conversation(tokenizer, GEMMA, late, max_length=32) is None


def test_single_turn_rows_become_a_chat():
    row = {"questionTitle": "Lonely", "questionText": "I moved.", "answerText": "I hear you."}
    assert row_to_messages(row, ["questionTitle", "questionText"], "answerText") == [
        {"role": "user", "content": "Lonely\n\nI moved."},
        {"role": "assistant", "content": "I hear you."},
    ]


def test_conversations_are_normalised_for_strict_templates():
    messages = [
        {"role": "assistant", "content": "Hi, how can I help?"},  # opens with the counselor
        {"role": "user", "content": "I'm sad."},
        {"role": "user", "content": "Very sad."},
        {"role": "assistant", "content": "I'm sorry."},
    ]
    out = normalise_conversation(messages, "Be kind.")
    assert out == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "I'm sad.\nVery sad."},
        {"role": "assistant", "content": "I'm sorry."},
    ]
    GEMMA.render(out)  # renders without the alternation error


def test_drop_long_leaves_out_conversations_that_would_be_cut(tokenizer):
    from mindwell.errors import MindwellError
    from mindwell.train.recipe import Recipe
    from mindwell.train.sft_task import tokenize_all

    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    long = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}]
    recipe = Recipe(task="sft", model="tiny-gemma", data="x.jsonl", max_length=64)
    cut, truncated = tokenize_all(recipe, tokenizer, GEMMA, [short, long])
    assert len(cut) == 2 and truncated == 1
    kept, dropped = tokenize_all(recipe, tokenizer, GEMMA, [short, long], drop_long=True)
    assert len(kept) == 1 and dropped == 1
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end in kept[0]["labels"]  # the kept example teaches the model to stop
    with pytest.raises(MindwellError, match="drop_long left none"):
        tokenize_all(recipe, tokenizer, GEMMA, [long], drop_long=True)
