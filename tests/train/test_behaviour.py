"""Behaviour metrics during sft: the model being trained answers a few prompts at each
evaluation, and what it says is scored beside the loss."""

import csv
import json
from pathlib import Path

import pytest

from mindwell.counselor.evaluate import Prompt, Reply
from mindwell.errors import MindwellError
from mindwell.train import load_recipe, train
from mindwell.train.behaviour import read_behaviour_prompts, score

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "configs" / "data" / "tiny-behaviour.jsonl"
RATES = ("eval_behaviour_stop_rate", "eval_behaviour_language_match",
         "eval_behaviour_guard_violations", "eval_behaviour_links")


def recipe(tmp_path: Path, *overrides: str):
    return load_recipe(ROOT / "configs" / "tiny-sft.yaml", [f"output_dir={tmp_path}",
                                                           *overrides])


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_prompts_are_read_from_messages_or_prompt_rows(tmp_path):
    prompts = read_behaviour_prompts(PROMPTS)
    assert len(prompts) == 4
    assert prompts[0].messages == [{"role": "user",
                                    "content": "I have been feeling lonely since I moved."}]
    assert [m["role"] for m in prompts[2].messages] == ["user", "assistant", "user"]
    assert [p.lang for p in prompts] == ["en", "en", "en", "ko"]
    answered = tmp_path / "answered.jsonl"  # a reference reply at the end is left out
    answered.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": "hello"}]})
                        + "\n")
    assert read_behaviour_prompts(answered)[0].messages == [{"role": "user", "content": "hi"}]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(MindwellError, match="row 1 has neither a 'messages' list nor a "
                                            "'prompt'"):
        read_behaviour_prompts(wrong)


def test_replies_are_scored_with_the_corpus_checks():
    prompts = [Prompt(str(i), lang, []) for i, lang in enumerate(["en", "en", "en", "ko"])]
    replies = [
        Reply("0", "m", "That sounds hard. What happened?", "stop", 0.0, 8),
        Reply("1", "m", "You can call me at 555-123-4567 or visit www.example.com", "length",
              0.0, 64),
        Reply("2", "m", "Sertraline might help you sleep.", "stop", 0.0, 7),
        Reply("3", "m", "I hear you.", "stop", 0.0, 5),  # English to a Korean prompt
    ]
    scores = score(replies, prompts)
    assert scores == {
        "behaviour_stop_rate": 0.75,
        "behaviour_mean_tokens": 21.0,
        "behaviour_language_match": 0.75,
        "behaviour_guard_violations": 0.5,  # the phone/link reply and the medication
        "behaviour_links": 0.25,
    }


def test_behaviour_metrics_are_logged_at_the_start_and_at_every_evaluation(tmp_path, caplog):
    with caplog.at_level("INFO", logger="mindwell.train"):
        result = train(recipe(tmp_path, "max_steps=4", "eval_steps=2", "save_steps=2"))
    evaluations = [h for h in result.history if "eval_loss" in h]
    # The start, steps 2 and 4, and the best model reloaded at the end.
    assert [h["step"] for h in evaluations] == [0, 2, 4, 4]
    for entry in evaluations:
        for key in RATES:
            assert 0.0 <= entry[key] <= 1.0, (key, entry)
        assert 0 <= entry["eval_behaviour_mean_tokens"] <= 64  # behaviour_max_tokens
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))[1:]
    logged = {(int(step), metric) for step, metric, _ in rows}
    for step in (0, 2, 4):
        assert {(step, key) for key in (*RATES, "eval_behaviour_mean_tokens")} <= logged
    assert (4, "best_model/eval_behaviour_stop_rate") in logged
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert set(RATES) <= set(summary["metrics"]) and summary["behaviour_prompts"] == 4
    # One progress line per evaluation: steps 0, 2, 4 and the best model reloaded.
    lines = [r.message for r in caplog.records if r.message.startswith("Behaviour at step")]
    assert len(lines) == 4 and lines[0].startswith("Behaviour at step 0 (4 prompts")
    assert "tiny-behaviour.jsonl` (4 prompts" in (tmp_path / "README.md").read_text()


def test_behaviour_stop_rate_chooses_the_best_checkpoint(tmp_path):
    from mindwell.train.runner import training_arguments

    chosen = recipe(tmp_path, "metric_for_best_model=behaviour_stop_rate", "max_steps=3",
                    "eval_steps=1", "save_steps=1", "save_total_limit=1")
    assert training_arguments(chosen, True, tmp_path).greater_is_better is True
    shorter = recipe(tmp_path, "metric_for_best_model=behaviour_mean_tokens")
    assert training_arguments(shorter, True, tmp_path).greater_is_better is False
    result = train(chosen)
    rates = {h["step"]: h["eval_behaviour_stop_rate"] for h in result.history
             if "eval_behaviour_stop_rate" in h and h["step"] > 0}
    best = max(rates.values())
    first_best = min(step for step, rate in rates.items() if rate == best)  # strictly better
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["best_checkpoint"].endswith(f"checkpoint-{first_best}")
    assert result.metrics["eval_behaviour_stop_rate"] == best  # the best model, reloaded


def test_behaviour_metrics_need_their_prompts_and_the_dry_run_checks_the_file(tmp_path):
    from mindwell.train.runner import plan, recipe_warnings

    with pytest.raises(MindwellError, match="behaviour_stop_rate needs behaviour_prompts"):
        recipe(tmp_path, "behaviour_prompts=", "metric_for_best_model=behaviour_stop_rate")
    with pytest.raises(MindwellError, match="'behaviour_stoprate' is not a behaviour metric"):
        recipe(tmp_path, "metric_for_best_model=behaviour_stoprate")
    with pytest.raises(MindwellError, match="behaviour_prompts is for task: sft"):
        load_recipe(ROOT / "configs" / "tiny-classify.yaml", [f"behaviour_prompts={PROMPTS}"])
    good = plan(recipe(tmp_path))
    assert good.error() is None, good.error()
    assert any(line.startswith(f"behaviour_prompts: {PROMPTS}: 4 prompts, ok")
               for line in good.lines), good.lines
    missing = plan(recipe(tmp_path, f"behaviour_prompts={tmp_path / 'none.jsonl'}"))
    assert "behaviour_prompts file not found" in str(missing.error())
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"question": "hi"}) + "\n")
    assert "neither a 'messages' list nor a 'prompt'" in str(
        plan(recipe(tmp_path, f"behaviour_prompts={wrong}")).error())
    [warning] = recipe_warnings(recipe(tmp_path, "validation_fraction=0"))
    assert "never answered" in warning
