"""`mindwell eval generation` on the tiny model: base vs a LoRA adapter trained on the spot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mindwell.analysis.generation import load_pairs, repetition_rate, reply_prompt
from mindwell.errors import MindwellError
from mindwell.inference.templates import GEMMA

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "configs" / "data" / "tiny-chat.jsonl"


def test_pairs_from_multi_turn_and_single_turn_data(tmp_path):
    pairs = load_pairs(str(CHAT))
    assert pairs and pairs[0].messages[-1]["role"] == "user" and pairs[0].reference
    table = tmp_path / "qa.csv"
    table.write_text("title,text,answer,split\nSleep,I can't sleep,Try a routine,test\n"
                     "Work,Too much work,Take breaks,train\n")
    single = load_pairs(str(table), ["title", "text"], "answer", "split", "test")
    assert len(single) == 1 and single[0].messages[0]["content"] == "Sleep\n\nI can't sleep"
    with pytest.raises(MindwellError, match="No rows"):
        load_pairs(str(table), ["title"], "answer", "split", "validation")
    with pytest.raises(MindwellError, match="no column"):
        load_pairs(str(table), ["question"], "answer")


def test_multi_turn_data_with_its_own_system_prompt_renders_for_gemma(tmp_path):
    # ESConv's conversations carry a system message and some open with the counselor.
    data = tmp_path / "esconv.jsonl"
    data.write_text(json.dumps({"messages": [
        {"role": "system", "content": "You are a supportive listener."},
        {"role": "assistant", "content": "Hello. How are you today?"},
        {"role": "user", "content": "a little sad"},
        {"role": "assistant", "content": "I'm sorry. Do you want to tell me more?"},
        {"role": "user", "content": "work is stressful"},
        {"role": "assistant", "content": "That sounds heavy."}]}) + "\n")
    (pair,) = load_pairs(str(data))
    messages = reply_prompt(pair, "Be kind.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Be kind."
    assert "supportive listener" not in GEMMA.render(messages, add_generation_prompt=True)


def test_repetition_rate():
    assert repetition_rate("I hear you and I am here for you") == 0.0
    assert repetition_rate("it is ok it is ok it is ok") > 0.5


def test_base_vs_tuned_report_on_the_tiny_model(tmp_path, monkeypatch):
    from mindwell.train.recipe import load_recipe
    from mindwell.train.runner import train

    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    train(load_recipe(ROOT / "configs" / "tiny-sft.yaml", [f"output_dir={run}",
                                                           "max_steps=20"]))
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "eval", "generation", "--model",
         str(run / "base"), "--model", str(run / "adapter"), "--data", str(CHAT),
         "--out", str(out), "--max-tokens", "8", "--limit", "4"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    base, tuned = report["results"]
    # Trained on these conversations, the adapter must find their answers more likely.
    assert tuned["perplexity"] < base["perplexity"]
    for row in (base, tuned):
        assert row["similarity"] is not None and row["words"] is not None
    assert "Sample replies" in (out / "report.md").read_text()
