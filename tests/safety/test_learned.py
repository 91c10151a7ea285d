import json
from pathlib import Path

import numpy as np
import pytest

from mindwell.safety.learned import HEAD_PATH, CrisisHead, shipped_head
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
    np.testing.assert_allclose(head.scores_for_vectors(queries),
                               svm.decision_function(queries), atol=1e-4)


def test_saved_head_reloads_with_its_thresholds(tmp_path):
    head = CrisisHead(np.eye(3, dtype=np.float32), np.array([1, -1, 0.5], np.float32), -0.2,
                      1.0, -0.4, -0.7)
    head.save(tmp_path / "head.npz")
    loaded = CrisisHead.load(tmp_path / "head.npz")
    assert (loaded.threshold, loaded.medium_threshold) == pytest.approx((-0.4, -0.7))
    np.testing.assert_allclose(loaded.scores_for_vectors(np.eye(3, dtype=np.float32)),
                               head.scores_for_vectors(np.eye(3, dtype=np.float32)), atol=1e-3)


def test_a_missing_head_file_is_a_clear_error(tmp_path):
    from mindwell.errors import MindwellError

    with pytest.raises(MindwellError, match="Cannot load the crisis head"):
        CrisisHead.load(tmp_path / "nope.npz")


def test_the_shipped_head_is_small_and_its_thresholds_are_ordered():
    assert HEAD_PATH.stat().st_size < 3_000_000
    head = shipped_head()
    assert head.medium_threshold <= head.threshold
    assert head.support_vectors.shape[1] == 512


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
def test_the_training_pipeline_builds_a_head_the_gate_can_load(tmp_path, monkeypatch):
    """A small embedding-svm run through `mindwell train`, then loaded as a CrisisHead."""
    from mindwell.train.recipe import Recipe
    from mindwell.train.runner import train

    recipe = Recipe(task="classify", classifier="embedding-svm", model="use-multilingual-v3",
                    data=str(EXEMPLARS), text_column="text", label_column="label",
                    labels=["0", "1"], validation_fraction=0.2, max_train_samples=300,
                    output_dir=str(tmp_path / "run"), seed=1)
    result = train(recipe)
    assert result.metrics["eval_accuracy"] > 0.6
    head = CrisisHead.from_run(tmp_path / "run" / "adapter" / "svm.npz")
    scores = head.scores(["I want to end my life tonight", "I'd love a pizza right now"])
    assert scores[0] > scores[1]
