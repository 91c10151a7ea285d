import torch
import torch.nn.functional as F

from mindwell.train.losses import balanced_class_weights, chunked_lm_loss


def test_chunked_loss_equals_the_full_shifted_loss_in_value_and_gradient():
    torch.manual_seed(0)
    hidden = torch.randn(2, 9, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9))
    labels[:, :4] = -100  # prompt positions
    logits = hidden @ weight.T
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1),
                                ignore_index=-100)
    ref_grads = torch.autograd.grad(reference, [hidden, weight])
    loss, count = chunked_lm_loss(hidden, labels, weight, chunk_size=3)
    grads = torch.autograd.grad(loss, [hidden, weight])
    assert count == int((labels[:, 1:] != -100).sum())
    assert torch.allclose(loss, reference, atol=1e-5)
    for ours, ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(ours, ref, atol=1e-5)


def test_softcapping_is_applied():
    hidden = torch.randn(1, 4, 8)
    weight = torch.randn(10, 8) * 20
    labels = torch.tensor([[-100, 1, 2, 3]])
    capped, _ = chunked_lm_loss(hidden, labels, weight, softcap=5.0)
    plain, _ = chunked_lm_loss(hidden, labels, weight)
    assert not torch.allclose(capped, plain)


def test_balanced_weights_match_the_usual_formula():
    assert balanced_class_weights([0, 0, 0, 1], 2) == [4 / 6, 4 / 2]
    assert balanced_class_weights([0, 0], 3) == [2 / (3 * 2), 0.0, 0.0]


def test_softcapped_loss_and_gradients_match_autograd():
    torch.manual_seed(1)
    hidden = torch.randn(1, 6, 8, requires_grad=True)
    weight = (torch.randn(12, 8) * 5).requires_grad_()
    labels = torch.tensor([[-100, 1, 2, 3, -100, 5]])
    logits = torch.tanh((hidden @ weight.T) / 3.0) * 3.0
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, 12), labels[:, 1:].reshape(-1),
                                ignore_index=-100)
    ref_grads = torch.autograd.grad(reference, [hidden, weight])
    loss, _ = chunked_lm_loss(hidden, labels, weight, softcap=3.0, chunk_size=2)
    grads = torch.autograd.grad(loss, [hidden, weight])
    assert torch.allclose(loss, reference, atol=1e-5)
    for ours, ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(ours, ref, atol=1e-5)
