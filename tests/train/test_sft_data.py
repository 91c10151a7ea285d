"""Data preparation in sft recipes: answers cut after N sentences, weighted mixing of
sources, and the sources' licences in the model card."""

import json
from collections import Counter
from pathlib import Path

import pytest

from mindwell.errors import MindwellError
from mindwell.train import load_recipe, train

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "configs" / "data" / "tiny-chat.jsonl"


def chat(answer: str, question: str = "How do I cope?") -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def write_source(path: Path, name: str, size: int) -> Path:
    path.write_text("".join(json.dumps({"messages": chat(f"Answer {name}{i}.", f"{name}{i}")})
                            + "\n" for i in range(size)))
    return path


def test_answers_are_cut_at_a_sentence_end_and_counted():
    from mindwell.counselor.corpus import cut_sentences
    from mindwell.train.sft import cut_answers

    essay = ("That sounds hard. Dr. Lee once said: 1. breathe, 2. walk! Would that help? "
             "Many people find it does.")
    assert cut_sentences(essay, 2) == "That sounds hard. Dr. Lee once said: 1. breathe, 2. walk!"
    assert cut_sentences("많이 힘드셨겠어요. 지금은 어떠세요? 천천히 말해 주세요.", 2) == (
        "많이 힘드셨겠어요. 지금은 어떠세요?")
    assert cut_sentences("One sentence without a mark", 1) == "One sentence without a mark"
    convs = [chat(essay), chat("Short. Enough."), chat("One.") + chat("Two. Three. Four.")]
    out, cut, answers = cut_answers(convs, 2)
    assert (cut, answers) == (2, 4)
    assert [m["content"] for c in out for m in c if m["role"] == "assistant"] == [
        "That sounds hard. Dr. Lee once said: 1. breathe, 2. walk!", "Short. Enough.", "One.",
        "Two. Three."]
    assert out[0][0] == convs[0][0]  # the person's words are never cut
    assert cut_answers(convs, None) == (convs, 0, 4)


def test_sources_are_mixed_by_weight_before_the_split(tmp_path):
    from mindwell.train.data import recipe_tables

    big = write_source(tmp_path / "big.jsonl", "big", 20)
    small = write_source(tmp_path / "small.jsonl", "small", 4)
    recipe = load_recipe(None, {"task": "sft", "model": "tiny-gemma", "data": [str(big),
                                                                              str(small)],
                                "data_weights": [0.5, 2.5], "validation_fraction": 0.25})
    mix: list[dict] = []
    table, train_rows, eval_rows = recipe_tables(recipe, mix=mix)
    assert mix == [{"source": str(big), "weight": 0.5, "rows": 10, "of": 20},
                   {"source": str(small), "weight": 2.5, "rows": 10, "of": 4}]
    users = Counter(m[0]["content"] for m in table["messages"])
    assert sum(n for u, n in users.items() if u.startswith("big")) == 10
    assert all(n == 1 for u, n in users.items() if u.startswith("big"))  # a subset
    assert sorted(n for u, n in users.items() if u.startswith("small")) == [2, 2, 3, 3]
    assert len(train_rows) + len(eval_rows) == 20 and "__mindwell_mix_row" not in (
        table.column_names)
    # The copies of one row stay on one side of the split: no row validates what it trained.
    seen_in_training = {m[0]["content"] for m in train_rows["messages"]}
    assert not seen_in_training & {m[0]["content"] for m in eval_rows["messages"]}
    again: list[dict] = []
    assert recipe_tables(recipe, mix=again)[0]["messages"] == table["messages"]  # seeded


def test_data_weights_and_licences_need_one_value_per_source():
    base = {"task": "sft", "model": "tiny-gemma", "data": ["a.jsonl", "b.jsonl"]}
    with pytest.raises(MindwellError, match="data_weights: .*data_weights has 1 value.* but "
                                            "data names 2 source"):
        load_recipe(None, {**base, "data_weights": [1.0]})
    with pytest.raises(MindwellError, match="data_licences: .*data_licences has 3 value"):
        load_recipe(None, {**base, "data_licences": ["MIT", "MIT", "MIT"]})
    with pytest.raises(MindwellError, match="data_weights.1: Input should be greater than 0"):
        load_recipe(None, {**base, "data_weights": [1.0, 0]})
    with pytest.raises(MindwellError, match="max_response_sentences is for task: sft"):
        load_recipe(None, {**base, "task": "dpo", "max_response_sentences": 3})


def test_non_commercial_or_no_derivative_data_warns_unless_the_model_is_non_commercial():
    from mindwell.train.runner import licence_warnings

    base = {"task": "sft", "model": "tiny-gemma", "data": ["a.jsonl", "counsel.csv"]}
    [warning] = licence_warnings(load_recipe(None, {**base, "data_licences": [
        "MIT", "CC-BY-NC-4.0"], "model_licence": "Apache-2.0"}))
    assert "data counsel.csv is licensed CC-BY-NC-4.0 (non-commercial)" in warning
    assert "model_licence is Apache-2.0" in warning
    [warning] = licence_warnings(load_recipe(None, {**base, "data_licences": [
        "CC-BY-ND-4.0", "NCSA"]}))  # NCSA is a permissive licence, not NC
    assert "data a.jsonl is licensed CC-BY-ND-4.0 (no derivatives)" in warning
    assert "model_licence is not set" in warning
    assert licence_warnings(load_recipe(None, {**base, "data_licences": [
        "MIT", "CC-BY-NC-SA-4.0"], "model_licence": "CC-BY-NC-SA-4.0"})) == []


def test_the_card_and_metrics_record_the_mix_the_cuts_and_the_licences(tmp_path, monkeypatch,
                                                                         caplog):
    from mindwell.train.runner import plan

    monkeypatch.chdir(ROOT)
    extra = write_source(tmp_path / "extra.jsonl", "extra", 4)
    recipe = load_recipe(ROOT / "configs" / "tiny-sft.yaml", [
        f"output_dir={tmp_path / 'run'}", f"data=[{CHAT}, {extra}]", "data_weights=[1, 2]",
        "data_licences=[project, CC-BY-NC-4.0]", "max_response_sentences=1",
        "behaviour_prompts=", "max_steps=1", "eval_steps=1000", "save_steps=1000"])
    lines = plan(recipe).lines
    assert f"data: {extra}: 4 rows, columns ok (messages); data_weights x2: 8 rows in the mix" \
        in lines
    assert any(line.startswith(f"warning: data {extra} is licensed CC-BY-NC-4.0 "
                               "(non-commercial), but model_licence is not set")
               for line in lines), lines
    with caplog.at_level("WARNING", logger="mindwell.train"):
        train(recipe)
    assert f"data {extra} is licensed CC-BY-NC-4.0 (non-commercial)" in caplog.text
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [(m["rows"], m["of"]) for m in summary["data_mix"]] == [(8, 8), (8, 4)]
    # Every tiny-chat answer has two sentences; the extra source's answers have one.
    assert summary["cut_responses"] > 0 and summary["responses"] > summary["cut_responses"]
    card = (tmp_path / "run" / "README.md").read_text()
    assert (f"Mixed by data_weights before the split: `{CHAT}` 8 rows of 8 (x1); `{extra}` 8 "
            "rows of 4 (x2).") in card
    assert (f"Answers cut after 1 sentence (max_response_sentences): "
            f"{summary['cut_responses']} of {summary['responses']} training answers, "
            f"{summary['eval_cut_responses']} validation answers.") in card
    assert f"Data licences: `{CHAT}`: project; `{extra}`: CC-BY-NC-4.0. Model licence: not " \
        "stated." in card
    assert "**Licence warning:** data" in card
