"""The corpus checker: each rule catches what it names, the split holds whole scenarios out,
and the shipped corpus passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindwell.counselor.corpus import (
    assign_splits,
    check_corpus,
    conversation_problems,
    near_duplicates,
    reply_problems,
    sentences,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = [ROOT / "configs/data/counsel/counsel_en.jsonl",
          ROOT / "configs/data/counsel/counsel_ko.jsonl"]
GOOD_EN = ("Moving somewhere new and eating alone every night sounds really lonely. It makes "
           "sense that the quiet hits hardest in the evenings. What has helped even a little?")
GOOD_KO = "혼자 밥 먹는 날이 이어지니 많이 허전하셨겠어요. 저녁이 제일 힘든 시간이에요?"


def conversation(reply: str, lang: str = "en", **extra) -> dict:
    return {"id": "c1", "lang": lang, "topic": "loneliness", "persona": "student",
            "messages": [{"role": "user", "content": "I moved and I feel alone."},
                         {"role": "assistant", "content": reply}], **extra}


def test_a_careful_reply_passes_in_either_language():
    assert reply_problems(GOOD_EN, "en") == []
    assert reply_problems(GOOD_KO, "ko") == []


@pytest.mark.parametrize(("reply", "lang", "problem"), [
    (GOOD_EN, "ko", "language"),
    ("That sounds hard.", "en", "1 sentences"),
    ("One. Two. Three. Four. Five.", "en", "5 sentences"),
    ("How long has it been? Who have you told?", "en", "more than one question"),
    ("That sounds hard. Look at www.example.com for tips.", "en", "a link"),
    ("That sounds hard. Call 555-123-4567 tonight.", "en", "a phone number"),
    ("That sounds hard. I'll call you tomorrow to check.", "en", "promise"),
    ("That sounds hard. Melatonin might help you sleep.", "en", "a medication"),
    ("That sounds hard. Twenty tablets would be too many.", "en", "reply guard"),
    ("많이 힘드셨겠어요. 수면제를 드셔 보세요.", "ko", "a medication"),
])
def test_each_rule_names_what_is_wrong(reply, lang, problem):
    found = reply_problems(reply, lang)
    assert any(problem in p for p in found), found


def test_ordinary_korean_words_are_not_amounts():
    # "두통" (headache), "한정" (limited), "전화 한 통" (one call) once tripped the guard.
    for reply in ("두통이 계속돼서 걱정되셨겠어요. 언제부터 아팠어요?",
                  "주말 한정 메뉴라니 기대돼요. 손님들 반응은 어땠어요?",
                  "하루 종일 전화 한 통 없으면 쓸쓸하죠. 오늘은 어떻게 지내셨어요?"):
        assert reply_problems(reply, "ko") == []


def test_sentences_count_an_unpunctuated_last_clause():
    assert sentences("I hear you. That is a lot") == 2
    assert sentences("정말 힘드셨겠어요. 요즘은 어때요?") == 2


def test_turns_must_alternate_and_end_with_the_counselor():
    row = conversation(GOOD_EN)
    row["messages"].append({"role": "user", "content": "thanks"})
    assert any("speak last" in p.what for p in conversation_problems(row))
    row = conversation(GOOD_EN)
    row["messages"][0]["role"] = "assistant"
    assert any("want user" in p.what for p in conversation_problems(row))
    assert conversation_problems({"id": "x", "messages": []})[0].what.startswith("missing")


def test_split_keeps_each_scenario_on_one_side():
    rows = [{**conversation(GOOD_EN), "topic": f"t{i % 12}", "persona": f"p{i % 3}",
             "id": f"c{i}"} for i in range(120)]
    split = assign_splits(rows, test_fraction=0.2, val_fraction=0.1)
    sides = {}
    for row in split:
        sides.setdefault((row["topic"], row["persona"]), set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    counts = {name: sum(r["split"] == name for r in split) for name in ("train", "val", "test")}
    assert counts["test"] and counts["val"] and counts["train"] > counts["test"]


def test_a_scenario_on_both_sides_is_reported(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [conversation(GOOD_EN, id="a", split="train"),
            conversation(GOOD_EN.replace("new", "far"), id="b", split="test")]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    report = check_corpus([path], dedupe=False)
    assert report.scenario_leaks == ["en|loneliness|student"] and not report.ok


def test_near_duplicates_are_found_across_languages_of_wording():
    first = conversation(GOOD_EN, id="a")
    second = conversation(GOOD_EN.replace("sounds", "seems"), id="b")
    second["messages"][0]["content"] = "I moved and I feel so alone."
    third = conversation(GOOD_KO, lang="ko", id="c")
    third["messages"][0]["content"] = "시험 때문에 잠을 못 자요"
    pairs = {(a, b) for a, b, _ in near_duplicates([first, second, third])}
    assert ("a", "b") in pairs and not any("c" in pair for pair in pairs)


def test_the_shipped_corpus_passes_every_check():
    report = check_corpus(CORPUS)
    assert report.ok, ([str(p) for p in report.problems[:5]], report.duplicates[:5],
                       report.scenario_leaks)
    assert report.by_language["en"] > 250 and report.by_language["ko"] > 200
    assert report.by_split.get("test", 0) >= 40
