"""`mindwell analyze`: the shipped heads, the result contract and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mindwell.analysis.analyzer import (
    ENGLISH_EMOTIONS,
    KOREAN_EMOTIONS,
    MAX_CHARS,
    LinearHead,
    TextAnalyzer,
)
from mindwell.errors import MindwellError


def mindwell(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "mindwell", *args], capture_output=True,
                          text=True, timeout=300, input=stdin)


def test_linear_head_gives_probabilities(tmp_path):
    np.savez(tmp_path / "h.npz", weight=np.eye(2, 4, dtype=np.float32),
             bias=np.zeros(2, np.float32), labels=np.array(["a", "b"]))
    head = LinearHead.load("h", tmp_path)
    probs = head.probabilities(np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0]], np.float32))
    assert np.allclose(probs.sum(1), 1) and probs[0, 0] > 0.99 and probs[1, 1] > 0.99
    with pytest.raises(MindwellError, match="Cannot load the analysis model"):
        LinearHead.load("missing", tmp_path)


@pytest.fixture(scope="module")
def analyzer():
    return TextAnalyzer()


def test_the_shipped_heads_have_the_documented_labels(analyzer):
    assert analyzer.emotion_en.labels == ENGLISH_EMOTIONS
    assert analyzer.emotion_ko.labels == KOREAN_EMOTIONS
    assert analyzer.depression.labels == ("0", "1")


@pytest.mark.integration
def test_results_follow_the_contract_in_order(analyzer):
    texts = ["I feel hopeless and alone, nothing helps anymore", "오늘 정말 행복한 하루였어요!",
             "", "I have pills saved up and tonight is the night"]
    results = analyzer.analyze(texts)
    assert len(results) == 4
    english, korean, empty, crisis = results
    assert english["language"] == "en" and set(english["emotion"]["scores"]) == set(
        ENGLISH_EMOTIONS)
    assert english["depression"]["label"] == 1 and 0 <= english["depression"]["score"] <= 1
    assert english["emotion"]["label"] == "sadness"
    assert korean["language"] == "ko" and korean["emotion"]["label"] == "기쁨"
    assert korean["depression"]["label"] == 0
    assert abs(sum(korean["emotion"]["scores"].values()) - 1) < 1e-3
    assert "empty" in empty["error"]
    assert crisis["risk"]["escalate"] and crisis["risk"]["level"] == "imminent"


@pytest.mark.integration
def test_long_and_foreign_texts_get_notices(analyzer):
    long_result, spanish = analyzer.analyze(["I am tired. " * 400, "hoy me siento muy triste"])
    assert any("cut to its first" in n for n in long_result["notices"])
    assert spanish["language"] == "other" and spanish["notices"]
    assert len("I am tired. " * 400) > MAX_CHARS


@pytest.mark.integration
def test_cli_jsonl_reports_bad_lines_and_keeps_going(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "I feel so alone lately"}\nnot json\n{"txt": "x"}\n'
                      '{"text": ""}\n{"text": 7}\n{"text": "오늘 너무 화가 나"}\n',
                      encoding="utf-8")
    result = mindwell("analyze", "--jsonl", str(source))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 6
    assert out[0]["language"] == "en" and out[5]["language"] == "ko"
    assert [o.get("line") for o in out[1:5]] == [2, 3, 4, 5]
    assert "not valid JSON" in out[1]["error"] and '"text"' in out[2]["error"]
    assert "empty" in out[3]["error"] and "string" in out[4]["error"]
    assert "4 of 6 lines could not be analysed" in result.stderr


@pytest.mark.integration
def test_cli_single_text_and_file(tmp_path):
    result = mindwell("analyze", "I can't stop crying since the breakup", "--json")
    assert result.returncode == 0, result.stderr
    assert {"language", "depression", "emotion", "risk"} <= set(json.loads(result.stdout))
    diary = tmp_path / "diary.txt"
    diary.write_text("Went for a walk today. Felt a little better.\n", encoding="utf-8")
    assert json.loads(mindwell("analyze", "--file", str(diary), "--json").stdout)["language"] \
        == "en"


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "   "], "Nothing to analyse"),
    (["analyze"], "exactly one of"),
    (["analyze", "--file", "/nonexistent/diary.txt"], "Cannot read"),
])
def test_cli_bad_input_is_a_clear_message(args, message):
    result = mindwell(*args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_binary_files(tmp_path):
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\x00\x10JFIF\x00")
    result = mindwell("analyze", "--file", str(binary))
    assert result.returncode == 2 and "binary" in result.stderr


def _reader_heads(directory):
    from mindwell.analysis.analyzer import TextReader
    from mindwell.safety.reader import shipped_reader

    rng = np.random.default_rng(0)
    for name, labels in (("depression", ("0", "1")), ("emotion_en", ENGLISH_EMOTIONS),
                         ("emotion_ko", KOREAN_EMOTIONS)):
        LinearHead(rng.normal(size=(len(labels), 512)).astype(np.float32),
                   np.zeros(len(labels), np.float32), labels, "text_reader").save(
            directory / f"{name}.npz")
    TextReader(shipped_reader().delta).save(directory / "text_reader.npz")


def test_heads_on_the_text_reader_read_its_vectors_once_per_batch(tmp_path, monkeypatch):
    from mindwell.analysis.analyzer import TextReader

    _reader_heads(tmp_path)
    assert LinearHead.load("emotion_en", tmp_path).reads == "text_reader"
    calls = []
    real_vectors = TextReader.vectors

    def counted(self, texts):
        calls.append(list(texts))
        return real_vectors(self, texts)

    monkeypatch.setattr(TextReader, "vectors", counted)
    analyzer = TextAnalyzer(tmp_path)
    texts = ["I slept badly and work was long", "오늘은 그냥 평범한 하루"]
    results = analyzer.analyze(texts)
    assert calls == [texts]
    assert all(set(r) >= {"emotion", "depression", "risk"} for r in results)
    # The tuned layers make different vectors from the encoder's own.
    assert not np.allclose(analyzer.reader.vectors(texts), analyzer.encoder.encode(texts),
                           atol=1e-3)


def test_a_missing_text_reader_is_named(tmp_path):
    _reader_heads(tmp_path)
    (tmp_path / "text_reader.npz").unlink()
    with pytest.raises(MindwellError, match="Cannot load the text reader"):
        TextAnalyzer(tmp_path)


def test_the_safety_reader_reads_a_batch_once_and_decides_as_one_at_a_time(monkeypatch):
    from mindwell.safety.reader import SafetyReader
    from mindwell.safety.risk import RiskAssessor

    calls = []
    real_vectors = SafetyReader.vectors

    def counted(self, texts):
        calls.append(list(texts))
        return real_vectors(self, texts)

    monkeypatch.setattr(SafetyReader, "vectors", counted)
    analyzer = TextAnalyzer()
    texts = ["Went to the farmers market with mom", "I don't see the point of anything anymore",
             "요즘 잠을 잘 못 자요", "I have saved up my pills for tonight"]
    batched = [r["risk"] for r in analyzer.analyze(texts)]
    assert calls[0] == texts and len(calls) == 1
    one_at_a_time = [RiskAssessor(reader=analyzer.risk.reader).assess(t).as_dict()
                     for t in texts]
    assert batched == one_at_a_time


def test_each_text_is_tokenized_once_for_all_encoders(monkeypatch):
    from mindwell.models.embedder import get_embedder

    analyzer = TextAnalyzer()
    memo = get_embedder()._model.sp
    seen = []
    real_encode = memo._tokenizer.encode

    def counted(text, **kwargs):
        seen.append(text)
        return real_encode(text, **kwargs)

    monkeypatch.setattr(memo._tokenizer, "encode", counted)
    texts = ["A tokenizer test about a quiet Tuesday 7351.", "토크나이저 시험 문장 7351"]
    analyzer.analyze(texts)
    assert sorted(seen) == sorted(texts)
