"""`mindwell eval classifier`: metrics, report files, comparison, and every model kind."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindwell.analysis.evaluate import Classifier, load_classifier, score, write_report
from mindwell.errors import MindwellError

ROOT = Path(__file__).resolve().parents[2]


def fixed(name, labels, probs):
    return Classifier(name, labels, lambda texts: np.array(probs[: len(texts)], dtype=float))


def test_scores_report_and_comparison(tmp_path):
    truth = ["0", "0", "1", "1"]
    good = fixed("good", ("0", "1"), [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    poor = fixed("poor", ("0", "1"), [[0.4, 0.6], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9]])
    results = {c.name: (c, score(c, ["a", "b", "c", "d"], truth)) for c in (good, poor)}
    assert results["good"][1]["accuracy"] == 1.0 and results["good"][1]["auroc"] == 1.0
    assert results["poor"][1]["accuracy"] == 0.5
    assert results["poor"][1]["confusion"] == [[1, 1], [1, 1]]
    assert results["poor"][1]["per_class"]["1"]["recall"] == 0.5
    report = write_report(results, "toy.csv", tmp_path)
    text = report.read_text()
    assert "| metric | good | poor |" in text and "| auroc | 1.0000 |" in text
    for name in ("good", "poor"):
        assert (tmp_path / f"confusion_{name}.png").stat().st_size > 1000
        assert (tmp_path / f"reliability_{name}.png").exists()
    assert json.loads((tmp_path / "report.json").read_text())["poor"]["n"] == 4


def test_unknown_labels_and_models_are_clear_errors(tmp_path):
    clf = fixed("m", ("0", "1"), [[0.5, 0.5]])
    with pytest.raises(MindwellError, match=r"labels \['maybe'\]"):
        score(clf, ["x"], ["maybe"])
    with pytest.raises(MindwellError, match="Unknown classifier 'nope'"):
        load_classifier("nope")
    (tmp_path / "adapter").mkdir()
    with pytest.raises(MindwellError, match="has no trained classifier"):
        load_classifier(str(tmp_path))


def test_a_lora_classifier_run_is_evaluated(tmp_path, monkeypatch):
    from mindwell.train.recipe import load_recipe
    from mindwell.train.runner import train

    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "configs" / "tiny-classify.yaml",
                         [f"output_dir={tmp_path / 'run'}", "max_steps=3"])
    train(recipe)
    classifier = load_classifier(str(tmp_path / "run"))
    assert classifier.labels == ("neutral", "sad", "joy", "anger")
    probs = classifier.predict_proba(["I am happy", "I am so angry"])
    assert probs.shape == (2, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.integration
def test_cli_writes_a_report_with_a_confusion_matrix(tmp_path):
    data = tmp_path / "test.csv"
    data.write_text("text,label\nI feel hopeless and empty every day,1\n"
                    "Had a lovely picnic with friends,0\n"
                    "I can't get out of bed and nothing matters,1\n"
                    "Great game last night!,0\n")
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "mindwell", "eval", "classifier", "--model", "depression",
         "--data", str(data), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout
    assert (out / "report.md").exists() and (out / "confusion_depression.png").exists()
    assert json.loads((out / "report.json").read_text())["depression"]["n"] == 4
