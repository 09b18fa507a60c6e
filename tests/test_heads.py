import numpy as np
import pytest
import torch
import torch.nn.functional as F

from equss.model.heads import ProjectionHead


def _numpy_head(head: ProjectionHead, x: np.ndarray) -> np.ndarray:
    """Both branches by hand: 1x1 convs as channel matrix products."""
    def conv(layer, t):
        w = layer.weight.detach().numpy()[:, :, 0, 0].astype(np.float64)
        b = layer.bias.detach().numpy().astype(np.float64)
        return np.einsum("oc,nchw->nohw", w, t) + b[None, :, None, None]

    lin = conv(head.linear, x)
    hidden = np.maximum(conv(head.nonlinear[0], x), 0.0)
    return lin + conv(head.nonlinear[2], hidden)


@pytest.mark.parametrize("in_dim,out_dim", [(384, 70), (16, 64), (8, 3)])
def test_shape_and_parameter_count(in_dim, out_dim):
    head = ProjectionHead(in_dim, out_dim)
    out = head(torch.randn(2, in_dim, 5, 7))
    assert out.shape == (2, out_dim, 5, 7)
    expected = (in_dim * out_dim + out_dim) + (in_dim * in_dim + in_dim) + (in_dim * out_dim + out_dim)
    assert sum(p.numel() for p in head.parameters()) == expected
    assert ProjectionHead.num_parameters(in_dim, out_dim) == expected


def test_eval_output_matches_manual_branches():
    torch.manual_seed(0)
    head = ProjectionHead(12, 20).eval()
    x = torch.randn(3, 12, 4, 6)
    out = head(x).detach().numpy()
    np.testing.assert_allclose(out, _numpy_head(head, x.numpy().astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_branch", [False, True])
def test_training_dropout_masks(per_branch):
    """Shared mask (EQUSS) vs one mask per branch (STEGO), replayed with the same seed."""
    head = ProjectionHead(10, 6, dropout=0.5, dropout_per_branch=per_branch).train()
    x = torch.randn(4, 10, 3, 3)
    torch.manual_seed(123)
    out = head(x)
    torch.manual_seed(123)
    x_a = F.dropout2d(x, 0.5, training=True)
    x_b = F.dropout2d(x, 0.5, training=True) if per_branch else x_a
    expected = head.linear(x_a) + head.nonlinear(x_b)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, head.eval()(x))  # dropout actually did something


def test_gradients_reach_both_branches_and_bad_input():
    head = ProjectionHead(5, 4).eval()
    head(torch.randn(2, 5, 3, 3)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    with pytest.raises(ValueError):
        head(torch.randn(2, 6, 3, 3))
    with pytest.raises(ValueError):
        ProjectionHead(0, 3)
