"""STEGO correlation loss against numpy re-computations (STEGO@eb4d6b5 src/modules.py)."""

import numpy as np
import pytest
import torch

from equss.model.losses import (CorrelationLoss, correlation_term, sample, sample_coords, super_perm,
                          tensor_correlation)


def _np_norm(t):
    return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-10)


def _np_term(f1, f2, c1, c2, shift, pointwise=True, zero_clamp=True, stabilize=False):
    """Explicit loops over (n, h, w, i, j)."""
    f1, f2, c1, c2 = (_np_norm(np.asarray(a, dtype=np.float64)) for a in (f1, f2, c1, c2))
    n, _, h, w = f1.shape
    _, _, hi, wj = f2.shape
    fd = np.zeros((n, h, w, hi, wj))
    cd = np.zeros_like(fd)
    for a in range(n):
        for y in range(h):
            for x in range(w):
                for i in range(hi):
                    for j in range(wj):
                        fd[a, y, x, i, j] = f1[a, :, y, x] @ f2[a, :, i, j]
                        cd[a, y, x, i, j] = c1[a, :, y, x] @ c2[a, :, i, j]
    if pointwise:
        centred = fd - fd.mean(axis=(3, 4), keepdims=True)
        fd = centred - centred.mean() + fd.mean()
    lo = 0.0 if zero_clamp else -9999.0
    cdc = np.clip(cd, lo, 0.8 if stabilize else None)
    return -cdc * (fd - shift), cd


def _np_sample(t, coords):
    """Bilinear, align_corners=True, border padding; output[..., a, b] at coords[:, b, a]."""
    t = np.asarray(t, dtype=np.float64)
    n, c, h, w = t.shape
    s = coords.shape[1]
    out = np.zeros((n, c, s, s))
    for k in range(n):
        for a in range(s):
            for b in range(s):
                gx, gy = coords[k, b, a]
                px = min(max((gx + 1) / 2 * (w - 1), 0), w - 1)
                py = min(max((gy + 1) / 2 * (h - 1), 0), h - 1)
                x0, y0 = int(np.floor(px)), int(np.floor(py))
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                dx, dy = px - x0, py - y0
                out[k, :, a, b] = (t[k, :, y0, x0] * (1 - dx) * (1 - dy) + t[k, :, y0, x1] * dx * (1 - dy)
                                   + t[k, :, y1, x0] * (1 - dx) * dy + t[k, :, y1, x1] * dx * dy)
    return out


def test_tensor_correlation_matches_loop():
    a, b = torch.randn(2, 3, 2, 3), torch.randn(2, 3, 4, 1)
    corr = tensor_correlation(a, b).numpy()
    for n in range(2):
        for y in range(2):
            for x in range(3):
                for i in range(4):
                    assert corr[n, y, x, i, 0] == pytest.approx(float(a[n, :, y, x] @ b[n, :, i, 0]), abs=1e-5)


@pytest.mark.parametrize("pointwise,zero_clamp,stabilize", [
    (True, True, False), (False, True, False), (True, False, False), (True, True, True)])
def test_correlation_term_matches_numpy(pointwise, zero_clamp, stabilize):
    torch.manual_seed(0)
    f1, f2 = torch.randn(2, 6, 3, 3), torch.randn(2, 6, 3, 3)
    c1 = torch.randn(2, 4, 3, 3)
    c2 = c1 + 0.3 * torch.randn(2, 4, 3, 3)  # correlated codes, so cd > 0.8 occurs
    loss, cd = correlation_term(f1, f2, c1, c2, 0.17, pointwise, zero_clamp, stabilize)
    ref_loss, ref_cd = _np_term(f1.numpy(), f2.numpy(), c1.numpy(), c2.numpy(), 0.17,
                                pointwise, zero_clamp, stabilize)
    np.testing.assert_allclose(cd.numpy(), ref_cd, atol=1e-5)
    np.testing.assert_allclose(loss.numpy(), ref_loss, atol=1e-5)
    assert (ref_cd > 0.8).any() and (ref_cd < 0).any()


def test_features_get_no_gradient_codes_do():
    f = torch.randn(2, 5, 3, 3, requires_grad=True)
    c = torch.randn(2, 4, 3, 3, requires_grad=True)
    loss, _ = correlation_term(f, f, c, c, 0.1)
    loss.mean().backward()
    assert f.grad is None
    assert c.grad is not None and c.grad.abs().sum() > 0


def test_sample_matches_numpy_bilinear():
    g = torch.Generator().manual_seed(5)
    t = torch.randn(2, 3, 5, 7)
    coords = sample_coords(2, 4, g) * 1.1  # a few points outside [-1, 1] test the border
    assert coords.shape == (2, 4, 4, 2)
    np.testing.assert_allclose(sample(t, coords).numpy(), _np_sample(t.numpy(), coords.numpy()), atol=1e-5)


def test_super_perm_never_pairs_an_image_with_itself():
    for size in (2, 3, 4, 7, 16):
        for seed in range(200):
            p = super_perm(size, torch.Generator().manual_seed(seed))
            assert p.dtype == torch.int64 and p.shape == (size,)
            assert (p != torch.arange(size)).all()
            assert ((p >= 0) & (p < size)).all()
            # STEGO's rule on the same randperm: fixed points move to i + 1 (mod size)
            base = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).numpy()
            fixed = base == np.arange(size)
            expect = np.where(fixed, base + 1, base) % size
            np.testing.assert_array_equal(p.numpy(), expect)
    with pytest.raises(ValueError, match="at least 2"):
        super_perm(1)


def _loss_module(**kw):
    args = dict(pos_intra_weight=0.47, pos_inter_weight=0.45, neg_inter_weight=0.53,
                pos_intra_shift=0.18, pos_inter_shift=0.02, neg_inter_shift=0.23,
                feature_samples=3, neg_samples=2)
    args.update(kw)
    return CorrelationLoss(**args)


def test_correlation_loss_matches_manual_recomputation():
    torch.manual_seed(0)
    b = 3
    feats, feats_pos = torch.randn(b, 6, 5, 5), torch.randn(b, 6, 5, 5)
    code, code_pos = torch.randn(b, 4, 5, 5), torch.randn(b, 4, 5, 5)
    module = _loss_module()
    out = module(feats, feats_pos, code, code_pos, generator=torch.Generator().manual_seed(42))

    g = torch.Generator().manual_seed(42)  # replay the documented draw order
    c1 = (torch.rand((b, 3, 3, 2), generator=g) * 2 - 1).numpy()
    c2 = (torch.rand((b, 3, 3, 2), generator=g) * 2 - 1).numpy()
    perms = [super_perm(b, g).numpy() for _ in range(2)]
    F, Fp, C, Cp = (t.numpy() for t in (feats, feats_pos, code, code_pos))
    f1, k1 = _np_sample(F, c1), _np_sample(C, c1)
    f2, k2 = _np_sample(Fp, c2), _np_sample(Cp, c2)
    intra, intra_cd = _np_term(f1, f1, k1, k1, 0.18)
    inter, inter_cd = _np_term(f1, f2, k1, k2, 0.02)
    negs = [_np_term(f1, _np_sample(F[p], c2), k1, _np_sample(C[p], c2), 0.23) for p in perms]
    neg = np.concatenate([n[0] for n in negs]).mean()
    neg_cd = np.concatenate([n[1] for n in negs]).mean()

    assert out.pos_intra.item() == pytest.approx(intra.mean(), abs=1e-5)
    assert out.pos_inter.item() == pytest.approx(inter.mean(), abs=1e-5)
    assert out.neg_inter.item() == pytest.approx(neg, abs=1e-5)
    assert out.pos_intra_cd.item() == pytest.approx(intra_cd.mean(), abs=1e-5)
    assert out.pos_inter_cd.item() == pytest.approx(inter_cd.mean(), abs=1e-5)
    assert out.neg_inter_cd.item() == pytest.approx(neg_cd, abs=1e-5)
    total = 0.47 * intra.mean() + 0.45 * inter.mean() + 0.53 * neg
    assert out.loss.item() == pytest.approx(total, abs=1e-5)


def test_weights_combine_and_generator_reproducible():
    torch.manual_seed(1)
    x = [torch.randn(4, 5, 6, 6) for _ in range(2)] + [torch.randn(4, 3, 6, 6) for _ in range(2)]
    base = _loss_module(feature_samples=5)(*x, generator=torch.Generator().manual_seed(7))
    again = _loss_module(feature_samples=5)(*x, generator=torch.Generator().manual_seed(7))
    assert base.loss.item() == again.loss.item()
    for w_intra, w_inter, w_neg in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2.0, -0.5, 0.3)]:
        out = _loss_module(feature_samples=5, pos_intra_weight=w_intra, pos_inter_weight=w_inter,
                           neg_inter_weight=w_neg)(*x, generator=torch.Generator().manual_seed(7))
        expect = w_intra * base.pos_intra + w_inter * base.pos_inter + w_neg * base.neg_inter
        assert out.loss.item() == pytest.approx(expect.item(), abs=1e-6)


def test_batch_of_one_needs_no_negatives():
    x = [torch.randn(1, 5, 4, 4), torch.randn(1, 5, 4, 4), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)]
    with pytest.raises(ValueError, match="at least 2"):
        _loss_module()(*x)
    out = _loss_module(neg_samples=0)(*x)
    assert out.neg_inter.item() == 0.0 and torch.isfinite(out.loss)


def test_loss_backpropagates_to_codes_only():
    feats = torch.randn(2, 5, 4, 4, requires_grad=True)
    code = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = _loss_module()(feats, feats, code, code)
    out.loss.backward()
    assert feats.grad is None
    assert code.grad is not None and torch.isfinite(code.grad).all()


def _literal_stego_forward(module, feats, feats_pos, code, code_pos, generator):
    """The term-by-term computation as STEGO writes it (and as equss did before batching):
    seven correlation_term calls, ``code[perm]`` fancy indexing, every set normalised inside."""
    b = feats.shape[0]
    coords1 = sample_coords(b, module.feature_samples, generator)
    coords2 = sample_coords(b, module.feature_samples, generator)
    f1, c1 = sample(feats, coords1), sample(code, coords1)
    f2, c2 = sample(feats_pos, coords2), sample(code_pos, coords2)
    kw = dict(pointwise=module.pointwise, zero_clamp=module.zero_clamp, stabilize=module.stabilize)
    intra, intra_cd = correlation_term(f1, f1, c1, c1, module.pos_intra_shift, **kw)
    inter, inter_cd = correlation_term(f1, f2, c1, c2, module.pos_inter_shift, **kw)
    neg_l, neg_c = [], []
    for _ in range(module.neg_samples):
        perm = super_perm(b, generator)
        ln, cn = correlation_term(f1, sample(feats[perm], coords2), c1, sample(code[perm], coords2),
                                  module.neg_inter_shift, **kw)
        neg_l.append(ln)
        neg_c.append(cn)
    neg = torch.cat(neg_l).mean() if neg_l else intra.new_zeros(())
    total = (module.pos_intra_weight * intra.mean() + module.pos_inter_weight * inter.mean()
             + module.neg_inter_weight * neg)
    return {"loss": total, "pos_intra": intra.mean(), "pos_inter": inter.mean(), "neg_inter": neg,
            "pos_intra_cd": intra_cd.mean(), "pos_inter_cd": inter_cd.mean(),
            "neg_inter_cd": torch.cat(neg_c).mean() if neg_c else intra.new_zeros(())}


@pytest.mark.parametrize("neg,pointwise,zero_clamp,stabilize", [
    (5, True, True, False), (3, False, True, False), (2, True, False, True), (0, True, True, False)])
def test_batched_loss_equals_the_literal_term_by_term_computation(neg, pointwise, zero_clamp, stabilize):
    torch.manual_seed(3)
    module = CorrelationLoss(0.7, 0.3, 0.9, 0.18, 0.12, 0.46, feature_samples=5, neg_samples=neg,
                             pointwise=pointwise, zero_clamp=zero_clamp, stabilize=stabilize)
    feats, feats_pos = torch.randn(4, 12, 6, 6), torch.randn(4, 12, 6, 6)
    code0 = torch.randn(4, 16, 6, 6)
    code_pos0 = code0 + 0.5 * torch.randn(4, 16, 6, 6)
    grads = []
    results = []
    for fn in (lambda *a, **k: vars(module(*a, **k)), lambda *a, **k: _literal_stego_forward(module, *a, **k)):
        code, code_pos = code0.clone().requires_grad_(True), code_pos0.clone().requires_grad_(True)
        out = fn(feats, feats_pos, code, code_pos, generator=torch.Generator().manual_seed(11))
        out["loss"].backward()
        results.append({k: float(v.detach()) for k, v in out.items()})
        grads.append((code.grad, code_pos.grad))
    fast, slow = results
    for key in slow:
        assert fast[key] == pytest.approx(slow[key], abs=1e-6), key
    for g_fast, g_slow in zip(*grads):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-5, atol=1e-7)
