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


CHATS = [
    [{"role": "user", "content": "I feel lonely since I moved."},
     {"role": "assistant", "content": "That sounds hard. What has the move been like?"}],
    [{"role": "user", "content": "I can't sleep."},
     {"role": "assistant", "content": "What helps you rest, even a little?"}],
    [{"role": "user", "content": "요즘 너무 우울해요."},
     {"role": "assistant", "content": "많이 힘드셨겠어요."}],
]


def _examples(tokenizer):
    items = [tokenize_conversation(tokenizer, GEMMA, chat, max_length=512) for chat in CHATS]
    return [{"input_ids": i.input_ids, "labels": i.labels} for i in items]


def test_packing_fills_rows_with_whole_conversations(tokenizer):
    from mindwell.train.sft_task import PackedCollator, pack

    examples = _examples(tokenizer)
    sizes = [len(e["input_ids"]) for e in examples]
    width = sizes[0] + sizes[1] + 2  # the two longest fit together, the third does not
    assert sizes[2] > 2 and sorted(sizes)[-1] + sorted(sizes)[-2] <= width
    packed = pack(examples, width)
    assert len(packed) == 2
    assert sorted(len(r["input_ids"]) for r in packed) == sorted(
        [sizes[2], sizes[0] + sizes[1]])
    for row in packed:
        assert len(row["input_ids"]) <= width
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        assert all(row["input_ids"][i] == tokenizer.bos_token_id for i in starts)
        assert all(row["labels"][i] == IGNORE_INDEX for i in starts)  # no loss across
    every = sorted(tuple(e["input_ids"]) for e in examples)
    rows = [r["input_ids"] for r in packed]
    assert sum(len(r) for r in rows) == sum(sizes)
    assert all(any(list(ids) == r[i:i + len(ids)] for r in rows for i in range(len(r)))
               for ids in every)
    batch = PackedCollator(tokenizer.pad_token_id)(list(packed))
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask
    width = batch["input_ids"].shape[1]
    assert width == max(len(r["input_ids"]) for r in packed)
    for index, row in enumerate(packed):
        length = len(row["input_ids"])
        assert batch["input_ids"][index, :length].tolist() == row["input_ids"]
        assert batch["input_ids"][index, length:].eq(tokenizer.pad_token_id).all()
        assert batch["labels"][index, length:].eq(-100).all()
        # Padding continues the last positions, so it adds no segment of its own.
        positions = batch["position_ids"][index].tolist()
        assert positions[length:] == list(range(positions[length - 1] + 1,
                                                positions[length - 1] + 1 + width - length))


def test_packed_conversations_do_not_attend_to_each_other(tokenizer):
    """The hidden states of a packed row equal those of each conversation run alone; the
    same row without restarting positions (one long causal sequence) does not."""
    import torch

    from mindwell.models.tiny import build_tiny_gemma
    from mindwell.train.sft_task import PackedCollator, pack

    model, _ = build_tiny_gemma(seed=0)
    model.eval()
    examples = _examples(tokenizer)
    packed = pack(examples, 10_000)
    assert len(packed) == 1
    batch = PackedCollator(tokenizer.pad_token_id)(list(packed))
    with torch.no_grad():
        together = model.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                               use_cache=False).last_hidden_state[0]
        flat = model.model(input_ids=batch["input_ids"],
                           use_cache=False).last_hidden_state[0]
        offset = 0
        for example in examples:
            ids = torch.tensor([example["input_ids"]])
            alone = model.model(input_ids=ids, use_cache=False).last_hidden_state[0]
            part = together[offset:offset + ids.shape[1]]
            torch.testing.assert_close(part, alone, atol=1e-5, rtol=1e-5)
            if offset:  # a later conversation would see the earlier ones without the mask
                assert not torch.allclose(flat[offset:offset + ids.shape[1]], alone, atol=1e-3)
            offset += ids.shape[1]
