"""Fine-tuning the embedded sentence encoder on several tasks at once."""

import numpy as np
import pytest

from mindwell.train.encoder import (
    EncoderTask,
    EncoderTrainingArguments,
    balanced_class_weights,
    predict,
    train_encoder,
)


def test_balanced_class_weights_favour_rare_classes_with_mean_one():
    ids = np.array([0] * 90 + [1] * 10)
    weights = balanced_class_weights(ids, 2, power=1.0)
    assert weights[1] > weights[0]
    assert np.isclose(weights[ids].mean(), 1.0)
    assert np.isclose(weights[1] / weights[0], 9.0)


def test_task_checks_its_shapes():
    with pytest.raises(ValueError, match="2 texts but 1 targets"):
        EncoderTask("x", "softmax", ("a", "b"), ["one", "two"], np.array([0]))
    with pytest.raises(ValueError, match="sigmoid targets"):
        EncoderTask("x", "sigmoid", ("a",), ["one"], np.array([1]))


def test_two_tasks_train_one_encoder_and_learn():
    happy = ["what a lovely sunny day", "I got the job, so happy", "we laughed all evening",
             "best birthday ever"]
    sad = ["I miss her every day", "I cried all night", "nothing matters anymore",
           "I feel so alone"]
    emotion = EncoderTask("emotion", "softmax", ("joy", "sadness"), happy + sad,
                          np.array([0] * 4 + [1] * 4), happy + sad, np.array([0] * 4 + [1] * 4))
    # -1: unknown target, left out of the loss.
    risk = EncoderTask("risk", "sigmoid", ("risk", "protocol"),
                       ["I want to die", "lovely weather", "I will end it tonight", "nice tea"],
                       np.array([[1, -1], [0, 0], [1, 1], [0, 0]], dtype=np.float32),
                       ["I want to die", "lovely weather"],
                       np.array([[1, 1], [0, 0]], dtype=np.float32))
    encoder, heads, history, _ = train_encoder(
        [emotion, risk], EncoderTrainingArguments(epochs=6, batch_size=4, learning_rate=1e-3,
                                                  head_learning_rate=3e-2, threads=1))
    assert set(heads) == {"emotion", "risk"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["emotion/accuracy"] == 1.0
    probabilities = predict(encoder, heads, ["so happy today", "I cried again"])
    assert probabilities["emotion"].shape == (2, 2)
    assert probabilities["risk"].shape == (2, 2)
    assert probabilities["emotion"][0, 0] > 0.5 and probabilities["emotion"][1, 1] > 0.5


def test_label_smoothing_keeps_sigmoid_outputs_away_from_certainty():
    texts = ["I want to die", "lovely weather", "I will end it tonight", "nice tea",
             "no reason to live", "a calm walk"]
    targets = np.array([[1, 1], [0, 0], [1, 1], [0, 0], [1, 1], [0, 0]], dtype=np.float32)

    def extremes(smoothing: float) -> tuple[float, float]:
        task = EncoderTask("risk", "sigmoid", ("risk", "protocol"), texts, targets)
        encoder, heads, _, _ = train_encoder([task], EncoderTrainingArguments(
            epochs=8, batch_size=3, learning_rate=1e-3, head_learning_rate=3e-2, threads=1,
            label_smoothing=smoothing))
        scores = predict(encoder, heads, texts)["risk"]
        return float(scores[targets == 1].max()), float(scores[targets == 0].min())

    sharp_high, sharp_low = extremes(0.0)
    soft_high, soft_low = extremes(0.4)
    assert soft_high < sharp_high and soft_low > sharp_low
    # Still learned: positives above negatives.
    assert soft_high > 0.5 > soft_low
