"""EQUSS composition (Eq. 5): which loss reaches which parameters, and what the probes see."""
import pytest
import torch
import torch.nn.functional as F

from equss.config import load_config
from equss.model import EQUSS


def make(pq=True, **ov):
    overrides = [f"model.pq={str(pq).lower()}", "model.head_dim=64", "model.num_codebooks=8",
                 "model.codebook_size=16", "model.dropout=0.0"] + [f"{k}={v}" for k, v in ov.items()]
    cfg = load_config("camvid-equss", "smoke", overrides=overrides)
    torch.manual_seed(0)
    return EQUSS(cfg, in_dim=32, n_classes=5).train(), cfg


def batch(b=4, c=32, h=6):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(b, c, h, h, generator=g)
    feats_pos = torch.randn(b, c, h, h, generator=g)
    labels = torch.randint(-1, 5, (b, 12, 12), generator=g)
    return feats, feats_pos, labels


def test_total_is_eq5_plus_probe_losses():
    model, cfg = make(**{"loss.vq_weight": 0.7, "loss.stego_weight": 1.3})
    feats, feats_pos, labels = batch()
    model.quantizer(model.head(feats))  # the official xavier re-initialisation happens at the first training forward
    torch.manual_seed(5)
    losses = model.training_losses(feats, feats_pos, labels)
    # independent recomputation of each term with the same random draws
    torch.manual_seed(5)
    code, code_pos = model.head(feats), model.head(feats_pos)
    vq = model.quantizer(code)
    corr = model.corr_loss(feats, feats_pos, code, code_pos)
    up = F.interpolate(vq.quantized.detach(), labels.shape[-2:], mode="bilinear", align_corners=False)
    cluster = model.cluster_probe.loss(up)
    linear = model.linear_probe.loss(up, labels)
    expected = (1.3 * corr.loss + 0.7 * (cfg.model.codebook_weight * vq.codebook_loss
                                         + cfg.model.commitment_weight * vq.commitment_loss) + cluster + linear)
    assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_probe_losses_do_not_reach_the_head_and_l_head_does_not_reach_probes():
    model, _ = make()
    feats, feats_pos, labels = batch()
    losses = model.training_losses(feats, feats_pos, labels)
    (losses["cluster"] + losses["linear"]).backward(retain_graph=True)
    assert all(p.grad is None for p in model.head.parameters())
    assert model.cluster_probe.clusters.grad is not None
    model.zero_grad()
    losses["model"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.cluster_probe.parameters())
    assert model.head.linear.weight.grad.abs().sum() > 0
    assert model.quantizer.codebooks.grad.abs().sum() > 0


def test_probes_see_quantised_output_and_without_pq_the_code():
    model, _ = make()
    feats = batch()[0]
    model.eval()
    out = model(feats)
    assert torch.equal(out.probe_input, model.quantizer(out.code).quantized)
    assert out.codes.shape == (4, 8, 6, 6)
    model2, _ = make(pq=False)
    out2 = model2.eval()(feats)
    assert out2.codes is None and torch.equal(out2.probe_input, out2.code)


def test_predict_flip_average():
    model, _ = make()
    model.eval()
    feats = batch()[0]
    flipped = feats.flip(-1)
    res = model.predict(feats, (12, 12), feats_flipped=flipped, materialize=True)
    x = (model(feats).probe_input + model(flipped).probe_input.flip(-1)) / 2
    x = F.interpolate(x, (12, 12), mode="bilinear", align_corners=False)
    assert torch.allclose(res["linear"], F.log_softmax(model.linear_probe(x), 1), atol=1e-6)


@pytest.mark.parametrize("size", [(12, 12), (17, 23), (6, 6), (48, 40)])
def test_fast_upsampled_probes_equal_the_literal_computation(size):
    model, _ = make()
    model.eval()
    feats = batch()[0]
    fast = model.predict(feats, size)
    slow = model.predict(feats, size, materialize=True)
    for k in ("cluster", "linear"):
        assert torch.allclose(fast[k], slow[k], atol=2e-5), k
        assert (fast[k].argmax(1) == slow[k].argmax(1)).float().mean() > 0.999


def test_tune_candidate_shifts_are_per_term_quantiles():
    import numpy as np

    from equss.pipeline.tune import candidate_shifts, parse_level

    rng = np.random.default_rng(0)
    samples = {"pos_intra": rng.normal(0.6, 0.2, 5000), "pos_inter": rng.normal(0.5, 0.2, 5000),
               "neg_inter": rng.normal(0.4, 0.2, 5000)}
    shifts = candidate_shifts(samples, "0.5,0.5,0.9")
    assert shifts["pos_intra_shift"] == pytest.approx(np.median(samples["pos_intra"]), abs=1e-3)
    assert shifts["neg_inter_shift"] == pytest.approx(np.quantile(samples["neg_inter"], 0.9), abs=1e-3)
    assert parse_level(0.7) == (0.7, 0.7, 0.7)
    with pytest.raises(Exception, match="q_intra"):
        parse_level("0.5,0.9")


def test_resize_labels_is_nearest_and_keeps_ignore():
    from equss.pipeline.inputs import resize_labels

    lab = torch.tensor([[[0, 1], [-1, 2]]])
    up = resize_labels(lab, 4)
    assert torch.equal(up[0], torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, 2, 2], [-1, -1, 2, 2]]))
    assert torch.equal(resize_labels(up, (2, 2)), lab) and resize_labels(lab, 2) is lab


@pytest.mark.parametrize("per_branch", [False, True])
def test_dropout_masks_official_shared_and_stego_three(per_branch):
    """model.dropout_per_branch=False: one Dropout2d mask shared by both head branches and
    L_head's features (official EQUSS); True: STEGO's order per image batch: a mask for the
    linear branch, one for the nonlinear branch, a third for the features L_head sees."""
    model, _ = make(pq=False, **{"model.dropout": 0.5, "model.dropout_per_branch": str(per_branch).lower()})
    assert model.head.dropout_per_branch is per_branch
    feats, feats_pos, labels = batch()
    torch.manual_seed(7)
    got = model.training_losses(feats, feats_pos, labels)["corr"]

    def mask(x):  # one fresh Dropout2d draw (whole channels zeroed with p 0.5)
        return F.dropout2d(x, 0.5, training=True)

    h = model.head
    lin = lambda x: F.conv2d(x, h.linear.weight, h.linear.bias)  # noqa: E731
    nonlin = lambda x: h.nonlinear(x)  # noqa: E731
    torch.manual_seed(7)
    if per_branch:
        code = lin(mask(feats)) + nonlin(mask(feats))
        f = mask(feats)
        code_pos = lin(mask(feats_pos)) + nonlin(mask(feats_pos))
        fp = mask(feats_pos)
    else:
        f, fp = mask(feats), mask(feats_pos)
        code, code_pos = lin(f) + nonlin(f), lin(fp) + nonlin(fp)
    ref = model.corr_loss(f, fp, code, code_pos).loss
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("upsample", [True, False])
def test_training_probe_losses_equal_probes_on_the_materialised_upsampled_input(upsample):
    """training_losses' probes (logits / dot products upsampled, never the d_E channels)
    against the literal path: upsample the detached probe input, then both probes."""
    cfg = load_config("camvid-equss", "proxy")
    cfg.model.probe_upsample = upsample
    torch.manual_seed(0)
    model = EQUSS(cfg, in_dim=384, n_classes=11).eval()  # eval: no dropout, same probe input twice
    feats, feats_pos = torch.randn(2, 384, 6, 6), torch.randn(2, 384, 6, 6)
    labels = torch.randint(-1, 11, (2, 13, 13))
    probes = (model.cluster_probe.clusters, model.linear_probe.conv.weight, model.linear_probe.conv.bias)

    losses = model.training_losses(feats, feats_pos, labels, generator=torch.Generator().manual_seed(1))
    fast = [float(losses["cluster"].detach()), float(losses["linear"].detach())]
    fast_grads = torch.autograd.grad(losses["cluster"] + losses["linear"], probes)

    x = model(feats).probe_input.detach()
    x_up = F.interpolate(x, (13, 13), mode="bilinear", align_corners=False) if upsample else x
    inner = torch.einsum("bchw,nc->bnhw", F.normalize(x_up, dim=1), F.normalize(model.cluster_probe.clusters, dim=1))
    cluster = -(F.one_hot(inner.argmax(1), 11).permute(0, 3, 1, 2).float() * inner).sum(1).mean()
    logits = F.interpolate(model.linear_probe.conv(x_up), (13, 13), mode="bilinear", align_corners=False)
    flat, lab = logits.permute(0, 2, 3, 1).reshape(-1, 11), labels.reshape(-1)
    linear = F.cross_entropy(flat[lab >= 0], lab[lab >= 0])
    slow_grads = torch.autograd.grad(cluster + linear, probes)

    assert fast == pytest.approx([cluster.item(), linear.item()], abs=1e-6)
    for g_fast, g_slow in zip(fast_grads, slow_grads):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("flip", [True, False])
def test_predict_labels_equal_the_argmax_of_the_literal_upsampled_probes(flip):
    """predict_labels (one forward for image + flip, one matmul, no log-softmax or norm)
    against the literal evaluation: two forwards, flip-average, materialise the upsampled
    probe input, cosine cluster probe and 1x1 linear probe, log-softmax, argmax."""
    cfg = load_config("camvid-equss", "proxy")
    torch.manual_seed(0)
    model = EQUSS(cfg, in_dim=384, n_classes=11).eval()
    g = torch.Generator().manual_seed(1)
    feats, flipped = torch.randn(2, 384, 7, 9, generator=g), torch.randn(2, 384, 7, 9, generator=g)
    with torch.no_grad():
        x = model(feats).probe_input
        if flip:
            x = (x + model(flipped).probe_input.flip(-1)) / 2
        for size in [(50, 61), (7, 9)]:
            got = model.predict_labels(feats, size, feats_flipped=flipped if flip else None)
            up = F.interpolate(x, size, mode="bilinear", align_corners=False)
            centroids = F.normalize(model.cluster_probe.clusters, dim=1)
            inner = torch.einsum("bchw,kc->bkhw", F.normalize(up, dim=1), centroids)
            lin = F.conv2d(up, model.linear_probe.conv.weight, model.linear_probe.conv.bias)
            for key, ref in (("cluster", F.log_softmax(2.0 * inner, dim=1)), ("linear", F.log_softmax(lin, dim=1))):
                assert got[key].shape == (2, *size) and got[key].dtype == torch.int64
                assert (got[key] == ref.argmax(1)).float().mean() > 0.999, key
