import json
from pathlib import Path

import numpy as np
import pytest

from mindwell.safety.learned import (
    HEAD_PATH,
    NGRAM_BUCKETS,
    CrisisHead,
    ngram_features,
    ngram_matrix,
    shipped_head,
)
from mindwell.safety.rules import without_idioms

ROOT = Path(__file__).resolve().parents[2]
EXEMPLARS = ROOT / "configs" / "data" / "crisis_exemplars.jsonl"


def test_numpy_scores_equal_scikit_learns_decision_function():
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(80, 16)).astype(np.float32)
    labels = (vectors[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    svm = SVC(C=3.0, gamma="scale").fit(vectors, labels)
    head = CrisisHead(svm.support_vectors_.astype(np.float32),
                      svm.dual_coef_[0].astype(np.float32), float(svm.intercept_[0]),
                      float(svm._gamma), 0.0, 0.0)
    queries = rng.normal(size=(10, 16)).astype(np.float32)
    np.testing.assert_allclose(head.svm_scores(queries),
                               svm.decision_function(queries), atol=1e-4)


def test_ngram_features_are_stable_hashed_and_unit_length_per_group():
    features = ngram_features("Which bridge is high enough?")
    assert features == ngram_features("which BRIDGE is high enough?")  # lowercased
    assert all(0 <= bucket < NGRAM_BUCKETS for bucket in features)
    # Two groups (words, characters), each of unit length: the squared values sum to 2
    # unless buckets collide across groups.
    assert sum(v * v for v in features.values()) == pytest.approx(2.0, abs=0.05)
    assert ngram_features("옥상 문 열려 있어?") and ngram_features("") == {}
    # A fixed hash (crc32), not Python's per-process one: the shipped weights depend on it.
    import zlib

    assert zlib.crc32(b"wbridge") % NGRAM_BUCKETS in ngram_features("bridge")
    assert zlib.crc32(b"c bri") % NGRAM_BUCKETS in ngram_features("bridge")


def test_a_stacked_head_combines_the_svm_and_the_ngram_model():
    from sklearn.linear_model import LogisticRegression

    texts = ["i want to die tonight", "i want pizza tonight", "nobody would miss me",
             "nobody was at the gym", "which bridge is high enough to end it",
             "which bridge has the best view"]
    labels = np.array([1, 0, 1, 0, 1, 0])
    words = LogisticRegression(C=10).fit(ngram_matrix(texts), labels)
    vectors = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    svm_only = CrisisHead(vectors, np.array([1, -1, 1, -1, 1, -1], np.float32), 0.1, 0.5,
                          0.0, -1.0)
    stacked = CrisisHead(svm_only.support_vectors, svm_only.dual_coef, 0.1, 0.5, 0.0, -1.0,
                         words.coef_[0].astype(np.float32), float(words.intercept_[0]),
                         (0.7, 0.4, -0.2))
    expected = (0.7 * svm_only.svm_scores(vectors)
                + 0.4 * words.decision_function(ngram_matrix(texts)) - 0.2)
    np.testing.assert_allclose(stacked.scores(texts, vectors), expected, rtol=1e-4, atol=1e-4)
    # Without an n-gram model the decision is the SVM's alone, as in older heads.
    np.testing.assert_allclose(svm_only.scores(texts, vectors), svm_only.svm_scores(vectors))


def test_saved_head_reloads_with_its_thresholds(tmp_path):
    head = CrisisHead(np.eye(3, dtype=np.float32), np.array([1, -1, 0.5], np.float32), -0.2,
                      1.0, -0.4, -0.7)
    head.save(tmp_path / "head.npz")
    loaded = CrisisHead.load(tmp_path / "head.npz")
    assert (loaded.threshold, loaded.medium_threshold) == pytest.approx((-0.4, -0.7))
    np.testing.assert_allclose(loaded.svm_scores(np.eye(3, dtype=np.float32)),
                               head.svm_scores(np.eye(3, dtype=np.float32)), atol=1e-3)


def test_a_stacked_head_survives_saving_in_float16(tmp_path):
    rng = np.random.default_rng(1)
    head = CrisisHead(rng.normal(size=(5, 4)).astype(np.float32),
                      rng.normal(size=5).astype(np.float32), 0.3, 0.7, -0.5, -1.5,
                      (rng.normal(size=NGRAM_BUCKETS) * 0.5).astype(np.float32), -0.8,
                      (1.9, 0.7, 1.2))
    head.save(tmp_path / "head.npz")
    loaded = CrisisHead.load(tmp_path / "head.npz")
    assert loaded.blend == pytest.approx(head.blend)
    vectors = rng.normal(size=(3, 4)).astype(np.float32)
    texts = ["how tall is the garage", "thanks for listening", "다 끝났어"]
    np.testing.assert_allclose(loaded.scores(texts, vectors), head.scores(texts, vectors),
                               atol=0.02)


def test_a_missing_head_file_is_a_clear_error(tmp_path):
    from mindwell.errors import MindwellError

    with pytest.raises(MindwellError, match="Cannot load the crisis head"):
        CrisisHead.load(tmp_path / "nope.npz")


def test_a_head_from_another_version_is_a_clear_error(tmp_path):
    from mindwell.errors import MindwellError

    np.savez(tmp_path / "head.npz", support_vectors=np.eye(2), dual_coef=np.ones(2),
             intercept=0.0, gamma=1.0, threshold=0.0, medium_threshold=-1.0,
             ngram_weights=np.zeros(1000))
    with pytest.raises(MindwellError, match="lacks blend, ngram_intercept"):
        CrisisHead.load(tmp_path / "head.npz")
    np.savez(tmp_path / "head.npz", support_vectors=np.eye(2), dual_coef=np.ones(2),
             intercept=0.0, gamma=1.0, threshold=0.0, medium_threshold=-1.0,
             ngram_weights=np.zeros(1000), ngram_intercept=0.0, blend=np.ones(3))
    with pytest.raises(MindwellError, match="another version"):
        CrisisHead.load(tmp_path / "head.npz")


def test_the_shipped_head_is_small_and_its_thresholds_are_ordered():
    assert HEAD_PATH.stat().st_size < 4_000_000
    head = shipped_head()
    assert head.medium_threshold <= head.threshold
    assert head.support_vectors.shape[1] == 512
    assert head.ngram_weights is not None and head.ngram_weights.shape == (NGRAM_BUCKETS,)


@pytest.mark.integration
def test_the_shipped_head_separates_crisis_from_everyday_messages():
    scores = shipped_head().scores(["I gave my cat to my sister, I won't need to feed her "
                                    "where I'm going", "hello", "what's for dinner tonight?"])
    threshold = shipped_head().threshold
    assert scores[0] >= threshold and scores[1] < threshold and scores[2] < threshold


def test_idioms_are_rewritten_before_the_learned_layer_reads_them():
    assert without_idioms("I'd die for pizza") == "would love pizza"
    assert without_idioms("this homework is killing me") == "this homework is hard on me"
    assert "죽" not in without_idioms("배고파 죽겠다")
    # Crisis statements are untouched.
    for text in ("I want to kill myself", "죽고 싶어", "I'm going to die tonight"):
        assert without_idioms(text) == text


def test_the_exemplars_are_balanced_and_bilingual():
    rows = [json.loads(line) for line in EXEMPLARS.read_text().splitlines()]
    labels = [row["label"] for row in rows]
    assert len(rows) >= 2000 and 0.3 <= np.mean(labels) <= 0.6
    assert {row["lang"] for row in rows} == {"en", "ko"}
    assert len({row["text"] for row in rows}) == len(rows)


@pytest.mark.integration
@pytest.mark.parametrize("ngrams", [False, True], ids=["svm", "svm+ngrams"])
def test_the_training_pipeline_builds_a_head_the_gate_can_load(tmp_path, ngrams):
    """A small embedding-svm run through `mindwell train`, then loaded as a CrisisHead."""
    from mindwell.train.recipe import Recipe
    from mindwell.train.runner import train

    recipe = Recipe(task="classify", classifier="embedding-svm", model="use-multilingual-v3",
                    data=str(EXEMPLARS), text_column="text", label_column="label",
                    labels=["0", "1"], validation_fraction=0.2, max_train_samples=300,
                    svm_ngrams=ngrams, output_dir=str(tmp_path / "run"), seed=1)
    result = train(recipe)
    assert result.metrics["eval_accuracy"] > 0.6
    head = CrisisHead.from_run(tmp_path / "run" / "adapter" / "svm.npz")
    assert (head.ngram_weights is not None) == ngrams
    if ngrams:  # the stacking trusts the SVM and the n-grams, each with a positive weight
        assert head.blend[0] > 0 and head.blend[1] > 0
    scores = head.scores(["I want to end my life tonight", "I'd love a pizza right now"])
    assert scores[0] > scores[1]


PAIRS = ROOT / "configs" / "data" / "crisis_pairs.jsonl"


def test_the_minimal_pairs_are_pairs_and_never_copy_a_suite_line():
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    pairs: dict = {}
    for row in rows:
        pairs.setdefault(row["pair"], []).append(row["label"])
        assert row["lang"] in ("en", "ko") and isinstance(row.get("history", []), list)
    assert len(rows) >= 2000 and all(sorted(labels) == [0, 1] for labels in pairs.values())
    suites = set()
    for path in (ROOT / "tests" / "safety").glob("*.jsonl"):
        for row in map(json.loads, filter(str.strip, path.read_text().splitlines())):
            # Red-team lines have a text; jailbreak lines a conversation.
            suites |= {row["text"]} if "text" in row else {
                m["content"] for m in row["messages"] if isinstance(m.get("content"), str)}
    assert not suites & {row["text"] for row in rows}
    for name in ("safety_graded_en.jsonl", "safety_graded_ko.jsonl"):
        graded = PAIRS.with_name(name).read_text().splitlines()
        assert not suites & {json.loads(line)["text"] for line in graded if line.strip()}


def test_conversation_pairs_train_on_what_the_gate_reads(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from build_crisis_data import pair_rows

    from mindwell.safety.risk import conversation_text

    history = ["i lost my job", "nobody would notice if i was gone", "anyway"]
    rows = pair_rows([
        {"text": "how tall is the garage", "history": history, "label": 1, "lang": "en",
         "category": "context_turns", "batch": "t", "pair": 7},
        {"text": "how tall is the garage", "history": ["moving day tomorrow"], "label": 0,
         "lang": "en", "category": "context_turns", "batch": "t", "pair": 7},
        {"text": "i want to die", "label": 1, "lang": "en", "category": "c", "batch": "t",
         "pair": 8},
    ], seen={"i want to die"})
    assert [(row["text"], row["label"], row["group"]) for row in rows] == [
        (conversation_text(history, "how tall is the garage"), 1, "pair-7"),
        (conversation_text(["moving day tomorrow"], "how tall is the garage"), 0, "pair-7"),
        ("how tall is the garage", 0, "pair-7"),  # alone it is not a crisis message
    ]
