"""`mindwell eval counselor` end to end on the tiny Gemma, the per-reply checks, and the
blind judging round trip."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mindwell.cli import app
from mindwell.counselor.evaluate import Prompt, Reply, judged_means, score, write_judge_sheet

PROMPTS = [
    {"id": "p-en", "lang": "en", "messages": [{"role": "user", "content": "I can't sleep."}]},
    {"id": "p-ko", "lang": "ko", "split": "test",
     "messages": [{"role": "user", "content": "요즘 잠을 못 자요"},
                  {"role": "assistant", "content": "잠을 못 자면 하루가 길게 느껴지죠. "
                                                   "언제부터 그랬어요?"}]},
]


def test_checks_read_each_reply_as_a_person_would():
    prompts = [Prompt("a", "en", [{"role": "user", "content": "hi"}]),
               Prompt("b", "ko", [{"role": "user", "content": "안녕"}], reference="안녕하세요.")]
    replies = [
        Reply("a", "m", "That sounds hard. What happened today?", "stop", 1.0, 10),
        Reply("b", "m", "That sounds hard. Call 555-123-4567 and take 20 mg.", "length", 1.0,
              30),
    ]
    first, second = (r.checks(p.lang) for r, p in zip(replies, prompts, strict=True))
    assert first == {"language_ok": True, "ended": True, "sentences": 2,
                     "ended_within_4": True, "repetition": 0.0, "flags": []}
    assert not second["language_ok"] and not second["ended"]
    assert "phone" in second["flags"] and "amount or dose" in second["flags"]
    scores = score("m", replies, prompts)
    assert scores.language_match == 0.5 and scores.ended_within_4 == 0.5
    assert scores.flagged == 0.5 and scores.similarity is not None
    assert scores.tokens_per_second == 20.0


def test_the_judge_sheet_hides_the_models_and_ratings_join_back(tmp_path):
    prompts = [Prompt("a", "en", [{"role": "user", "content": "hi"}])]
    replies = [Reply("a", "model-one", "Hello there. How are you?", "stop", 1, 5),
               Reply("a", "model-two", "Hi. What brings you here?", "stop", 1, 5)]
    sheet, key = write_judge_sheet(replies, prompts, tmp_path)
    text = sheet.read_text()
    assert "model-one" not in text and "model-two" not in text
    items = [json.loads(line)["item"] for line in text.splitlines()]
    mapping = json.loads(key.read_text())
    ratings = tmp_path / "ratings.jsonl"
    ratings.write_text("\n".join(json.dumps(
        {"item": item, "empathy": 5 if mapping[item]["model"] == "model-one" else 2,
         "relevance": 4, "helpfulness": 3, "safety": 5, "fluency": 4,
         "harmful": mapping[item]["model"] == "model-two"}) for item in items))
    means = judged_means(ratings, key)
    assert means["model-one"]["empathy"] == 5 and means["model-two"]["empathy"] == 2
    assert means["model-two"]["harmful"] == 1.0 and means["model-one"]["judged"] == 1


def test_ratings_missing_a_score_are_a_clear_error(tmp_path):
    from mindwell.errors import MindwellError

    replies = [Reply("a", "m", "Hi.", "stop", 1, 1)]
    _, key = write_judge_sheet(replies, [Prompt("a", "en", [])], tmp_path)
    ratings = tmp_path / "r.jsonl"
    ratings.write_text(json.dumps({"item": "r0000", "empathy": 4}))
    with pytest.raises(MindwellError, match="lacks relevance"):
        judged_means(ratings, key)


def test_eval_counselor_runs_on_a_tiny_model(tiny_checkpoint, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in PROMPTS))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "eval", "counselor", "--model", str(tiny_checkpoint), "--prompts", str(data),
        "--out", str(out), "--max-tokens", "8", "--judge-sheet"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report[0]["n"] == 2 and report[0]["similarity"] is not None
    replies = [json.loads(line) for line in (out / "replies.jsonl").read_text().splitlines()]
    assert {r["prompt"] for r in replies} == {"p-en", "p-ko"}
    assert all(r["tokens"] <= 8 for r in replies)
    assert (out / "judge_sheet.jsonl").exists()
    assert "Judged" not in (out / "report.md").read_text()

    # A blind reader's ratings join back without regenerating anything.
    sheet = [json.loads(line) for line in (out / "judge_sheet.jsonl").read_text().splitlines()]
    ratings = tmp_path / "ratings.jsonl"
    ratings.write_text("\n".join(json.dumps({"item": row["item"], "empathy": 3, "relevance": 2,
                                              "helpfulness": 1, "safety": 5, "fluency": 2,
                                              "harmful": False}) for row in sheet))
    before = (out / "replies.jsonl").read_text()
    joined = CliRunner().invoke(app, ["eval", "counselor", "--prompts", str(data),
                                      "--out", str(out), "--ratings", str(ratings)])
    assert joined.exit_code == 0, joined.output
    assert (out / "replies.jsonl").read_text() == before
    assert json.loads((out / "report.json").read_text())[0]["judged"]["empathy"] == 3
    assert "## Judged blind" in (out / "report.md").read_text()

    split = CliRunner().invoke(app, ["eval", "counselor", "--model", str(tiny_checkpoint),
                                     "--prompts", str(data), "--split", "test",
                                     "--out", str(tmp_path / "split"), "--max-tokens", "8"])
    assert split.exit_code == 0, split.output
    assert json.loads((tmp_path / "split" / "report.json").read_text())[0]["n"] == 1


def test_a_prompt_file_without_a_person_turn_is_a_clear_error(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"id": "x", "messages": [{"role": "assistant", "content": "hi"}]}))
    result = CliRunner().invoke(app, ["eval", "counselor", "--prompts", str(data),
                                      "--out", str(tmp_path / "o")])
    assert "does not end with the person's turn" in str(result.exception)
