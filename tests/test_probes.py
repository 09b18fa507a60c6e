import numpy as np
import torch
import torch.nn.functional as F

from equss.model.probes import ClusterProbe, LinearProbe


def _manual_inner(x, clusters):
    x = x.detach().numpy().astype(np.float64)
    c = clusters.detach().numpy().astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    return np.einsum("bchw,nc->bnhw", xn, cn)


def test_cluster_loss_matches_numpy():
    torch.manual_seed(0)
    probe = ClusterProbe(8, 5)
    x = torch.randn(2, 8, 4, 6)
    inner = _manual_inner(x, probe.clusters)
    expected = -inner.max(1).mean()  # hard assignment: the best cosine per pixel
    loss, probs = probe(x)
    assert abs(loss.item() - expected) < 1e-5
    assert abs(probe.loss(x).item() - expected) < 1e-5
    np.testing.assert_array_equal(probs.argmax(1).numpy(), inner.argmax(1))
    assert probs.dtype == torch.float32 and torch.all(probs.sum(1) == 1)
    loss.backward()
    assert probe.clusters.grad is not None and probe.clusters.grad.abs().sum() > 0


def test_cluster_log_probs_and_soft_path():
    torch.manual_seed(1)
    probe = ClusterProbe(6, 4)
    x = torch.randn(1, 6, 3, 3)
    inner = _manual_inner(x, probe.clusters)
    z = inner * 2.0
    ref = z - np.log(np.exp(z).sum(1, keepdims=True))
    np.testing.assert_allclose(probe.log_probs(x).detach().numpy(), ref, atol=1e-5)
    loss, probs = probe(x, alpha=3.0)
    p = np.exp(inner * 3) / np.exp(inner * 3).sum(1, keepdims=True)
    np.testing.assert_allclose(probs.detach().numpy(), p, atol=1e-5)
    assert abs(loss.item() + (p * inner).sum(1).mean()) < 1e-5
    np.testing.assert_array_equal(probe.predict(x).numpy(), inner.argmax(1))


def test_linear_probe_loss_upsamples_logits_and_ignores():
    torch.manual_seed(2)
    probe = LinearProbe(5, 3)
    x = torch.randn(2, 5, 4, 4)
    labels = torch.randint(-1, 3, (2, 16, 16))
    labels[0, 0, :4] = 7  # >= n_classes is ignored too (STEGO mask)
    logits = probe.conv(x)
    up = F.interpolate(logits, (16, 16), mode="bilinear", align_corners=False)
    lab = labels.clone()
    lab[lab >= 3] = -1
    ref = F.cross_entropy(up, lab, ignore_index=-1)
    assert torch.allclose(probe.loss(x, labels), ref, atol=1e-6)
    assert probe(x).shape == (2, 3, 4, 4)


def test_linear_probe_all_ignored_is_zero():
    probe = LinearProbe(3, 2)
    loss = probe.loss(torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), -1))
    assert loss.item() == 0.0
