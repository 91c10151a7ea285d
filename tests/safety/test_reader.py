"""The tuned safety reader: numpy inference equals the torch model it was trained as, the
shipped file loads and is small, and the gate reads intent with it."""

import numpy as np
import pytest

from mindwell.errors import MindwellError
from mindwell.safety.reader import READER_PATH, UPPER_LAYERS, SafetyReader, usem3_arrays

pytestmark = pytest.mark.integration

TEXTS = ["I want to die", "오늘 너무 힘들어", "hello there, how are you?",
         "My dad hits me when he drinks", "took my meds, went for a walk " * 20]


@pytest.fixture(scope="module")
def perturbed():
    """The base encoder with every upper layer nudged, as training would."""
    torch = pytest.importorskip("torch")
    from mindwell.models.use_torch import load_use_encoder

    encoder = load_use_encoder()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in encoder.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
    return encoder


def test_numpy_inference_matches_the_tuned_torch_model(perturbed):
    import torch

    from mindwell.models.use_torch import tokenize

    with torch.no_grad():
        expected = perturbed(tokenize(TEXTS)).numpy()
    reader = SafetyReader(usem3_arrays(perturbed.state_dict_delta()),
                          np.zeros((512, 2), np.float32), np.zeros(2, np.float32))
    assert np.abs(reader.vectors(TEXTS) - expected).max() < 1e-4


def test_a_saved_reader_scores_as_before(perturbed, tmp_path):
    rng = np.random.default_rng(0)
    reader = SafetyReader(usem3_arrays(perturbed.state_dict_delta()),
                          rng.normal(size=(512, 2)).astype(np.float32),
                          np.array([0.1, -0.2], np.float32), 0.1, 0.4, 0.6, blend=1.0)
    reader.save(tmp_path / "reader.npz")
    again = SafetyReader.load(tmp_path / "reader.npz")
    assert (again.attention, again.check_in_threshold, again.protocol_threshold,
            again.blend) == pytest.approx((0.1, 0.4, 0.6, 1.0))
    for before, after in zip(reader.scores(TEXTS), again.scores(TEXTS), strict=True):
        assert np.abs(before - after).max() < 2e-3  # float16 delta


def test_risk_is_never_below_protocol():
    risk, protocol = SafetyReader.load().scores(TEXTS)
    assert np.all(risk >= protocol - 1e-9) and np.all((protocol >= 0) & (risk <= 1))


def test_the_shipped_reader_is_small_complete_and_ordered():
    assert READER_PATH.stat().st_size < 8e6
    reader = SafetyReader.load()
    assert set(UPPER_LAYERS) <= set(reader.delta)
    assert 0 < reader.attention <= reader.check_in_threshold <= reader.protocol_threshold < 1
    assert 0 < reader.blend <= 1


def test_a_broken_reader_file_is_a_clear_error(tmp_path):
    path = tmp_path / "reader.npz"
    np.savez(path, head_weight=np.zeros((512, 2)))
    with pytest.raises(MindwellError, match="lacks"):
        SafetyReader.load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(MindwellError, match="Cannot load"):
        SafetyReader.load(path)


@pytest.mark.parametrize(("text", "history", "action"), [
    ("I've written letters to my kids and I'm ready to go tonight", None, "protocol"),
    ("went to the farmers market with mom, got peaches", None, "normal"),
    ("can you recommend a good book about grief?", None, "normal"),
    ("how long does a letter take to arrive?", ["I wrote my goodbye letters",
                                                "everything is ready"], "protocol"),
])
def test_the_gate_with_the_reader(text, history, action):
    from mindwell.safety.risk import RiskAssessor

    assert RiskAssessor().assess(text, history).action == action
