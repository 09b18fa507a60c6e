"""ProductQuantizer against independent references.

``_official_reference`` is written from the facts of the official EQUSS ``Codebook`` /
``ProductQuantizerWrapper`` (pitlover/...@da82dea, model/dino_pqgo.py, normalize="l2",
vq_type="param"): a loop over ``torch.chunk`` pieces, one embedding table per codebook.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from equss.model.quantize import ProductQuantizer, assign


def _numpy_codes(x: np.ndarray, books: np.ndarray) -> np.ndarray:
    """Brute force Eq. 2: per codebook, per position, argmin over normalised distances."""
    b, dim, h, w = x.shape
    m, k, d = books.shape
    codes = np.zeros((b, m, h, w), dtype=np.int64)
    for i in range(m):
        e = books[i] / np.linalg.norm(books[i], axis=1, keepdims=True)
        sub = x[:, i * d:(i + 1) * d]  # contiguous chunk (torch.chunk)
        sub = sub / np.linalg.norm(sub, axis=1, keepdims=True)
        for n in range(b):
            for y in range(h):
                for xx in range(w):
                    dist = ((sub[n, :, y, xx][None, :] - e) ** 2).sum(1)
                    codes[n, i, y, xx] = int(np.argmin(dist))
    return codes


def _official_reference(x, books, book=1.0, beta=0.25):
    """Per-codebook loop with the official semantics (raw codeword forward value)."""
    m = books.shape[0]
    outs, idxs, cb_losses, cm_losses = [], [], [], []
    for i, z in enumerate(torch.chunk(x, m, dim=1)):
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        z_norm = F.normalize(flat, dim=1)
        e_norm = F.normalize(books[i], dim=1)
        dist = (z_norm ** 2).sum(1, keepdim=True) + (e_norm ** 2).sum(1) - 2 * z_norm @ e_norm.t()
        idx = dist.argmin(1)
        z_q = F.embedding(idx, books[i])
        cb_losses.append(F.mse_loss(z_q, z_norm.detach()))
        cm_losses.append(F.mse_loss(z_norm, z_q.detach()))
        z_q = z_norm + (z_q - z_norm).detach()
        outs.append(z_q.view(b, h, w, d).permute(0, 3, 1, 2))
        idxs.append(idx.view(b, h, w))
    cb = torch.stack(cb_losses).mean()
    cm = torch.stack(cm_losses).mean()
    return torch.cat(outs, 1), torch.stack(idxs, 1), cb, cm, book * cb + beta * cm


def _pq(dim=24, m=4, k=7, seed=0, **kw):
    torch.manual_seed(seed)
    pq = ProductQuantizer(dim, m, k, **kw)
    pq.train()
    pq(torch.randn(1, dim, 1, 1))  # trigger the one-time xavier draw
    return pq


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        ProductQuantizer(10, 3, 8)
    with pytest.raises(ValueError, match="codebook_size"):
        ProductQuantizer(12, 3, 0)
    with pytest.raises(ValueError, match="num_codebooks"):
        ProductQuantizer(12, 0, 8)
    with pytest.raises(ValueError):
        ProductQuantizer(12, 3, 8, variant="nope")
    with pytest.raises(ValueError):
        _pq()(torch.randn(2, 23, 3, 3))


def test_codes_match_numpy_brute_force():
    pq = _pq(dim=24, m=4, k=7)
    x = torch.randn(2, 24, 3, 5)
    out = pq(x)
    assert out.codes.dtype == torch.int64 and out.codes.shape == (2, 4, 3, 5)
    expected = _numpy_codes(x.numpy().astype(np.float64), pq.codebooks.detach().numpy().astype(np.float64))
    np.testing.assert_array_equal(out.codes.numpy(), expected)
    np.testing.assert_array_equal(pq.encode(x).numpy(), expected)


@pytest.mark.parametrize("book,beta", [(1.0, 0.25), (0.5, 2.0)])
def test_forward_matches_official_reference(book, beta):
    pq = _pq(dim=32, m=8, k=5, codebook_weight=book, commitment_weight=beta)
    x = torch.randn(3, 32, 4, 4) * 3
    out = pq(x)
    q, codes, cb, cm, loss = _official_reference(x, pq.codebooks.detach(), book, beta)
    torch.testing.assert_close(out.codes, codes)
    torch.testing.assert_close(out.quantized, q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.codebook_loss, cb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.commitment_loss, cm, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, loss, atol=1e-5, rtol=1e-5)
    # forward value of the official variant is the RAW codeword row
    books = pq.codebooks.detach()
    d = 32 // 8
    for i in range(8):
        raw = books[i][codes[:, i]].permute(0, 3, 1, 2)
        torch.testing.assert_close(out.quantized[:, i * d:(i + 1) * d], raw, atol=1e-6, rtol=1e-6)


def test_usage_counts_distinct_codes():
    pq = _pq(dim=16, m=4, k=32)
    x = torch.randn(2, 16, 3, 3)
    out = pq(x)
    used = [len(np.unique(out.codes[:, i].numpy())) / 32 for i in range(4)]
    assert out.usage.item() == pytest.approx(np.mean(used))


def test_straight_through_gradients():
    pq = _pq(dim=12, m=3, k=6)
    x = torch.randn(2, 12, 3, 3, requires_grad=True)
    g = torch.randn(2, 12, 3, 3)
    out = pq(x)
    (out.quantized * g).sum().backward()
    # input gradient: through the per-chunk L2 normalisation only
    x2 = x.detach().clone().requires_grad_(True)
    z_norm = torch.cat([F.normalize(c, dim=1) for c in torch.chunk(x2, 3, dim=1)], 1)
    (z_norm * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    # the quantised output gives the codebooks no gradient
    assert pq.codebooks.grad is None or pq.codebooks.grad.abs().max() == 0


def test_loss_gradients_split_between_codebooks_and_input():
    pq = _pq(dim=12, m=3, k=6)
    x = torch.randn(2, 12, 3, 3, requires_grad=True)
    out = pq(x)
    out.codebook_loss.backward(retain_graph=True)
    assert x.grad is None or x.grad.abs().max() == 0  # codebook loss: no input grad
    # analytic d/dE mean((E[k] - z_norm)^2) = 2 * sum over assigned rows / numel
    books = pq.codebooks.detach()
    expected = torch.zeros_like(books)
    numel = x.numel()
    for i, chunk in enumerate(torch.chunk(x.detach(), 3, dim=1)):
        z_norm = F.normalize(chunk, dim=1).permute(0, 2, 3, 1).reshape(-1, 4)
        idx = out.codes[:, i].reshape(-1)
        for n in range(z_norm.shape[0]):
            expected[i, idx[n]] += 2 * (books[i, idx[n]] - z_norm[n]) / numel
    torch.testing.assert_close(pq.codebooks.grad, expected, atol=1e-6, rtol=1e-5)
    pq.codebooks.grad = None
    out.commitment_loss.backward()
    assert pq.codebooks.grad is None or pq.codebooks.grad.abs().max() == 0
    assert x.grad.abs().max() > 0


def test_xavier_reinit_once_in_training_never_in_eval():
    torch.manual_seed(1)
    k, d = 8, 5
    pq = ProductQuantizer(20, 4, k)
    init = pq.codebooks.detach().clone()
    assert init.abs().max() <= 1.0 / k and not bool(pq.initialized)
    pq.eval()
    pq(torch.randn(2, 20, 2, 2))
    pq.encode(torch.randn(2, 20, 2, 2))
    torch.testing.assert_close(pq.codebooks.detach(), init)
    assert not bool(pq.initialized)
    pq.train()
    pq(torch.randn(2, 20, 2, 2))
    after = pq.codebooks.detach().clone()
    bound = math.sqrt(6.0 / (k + d))
    assert bool(pq.initialized) and not torch.equal(after, init)
    assert after.abs().max() <= bound and after.abs().max() > 1.0 / k
    pq(torch.randn(2, 20, 2, 2))
    torch.testing.assert_close(pq.codebooks.detach(), after)  # only once
    # a loaded checkpoint is not re-initialised
    fresh = ProductQuantizer(20, 4, k)
    fresh.load_state_dict(pq.state_dict())
    fresh.train()(torch.randn(2, 20, 2, 2))
    torch.testing.assert_close(fresh.codebooks.detach(), after)
    # init="uniform" keeps the construction draw
    uni = ProductQuantizer(20, 4, k, init="uniform")
    before = uni.codebooks.detach().clone()
    uni.train()(torch.randn(2, 20, 2, 2))
    torch.testing.assert_close(uni.codebooks.detach(), before)


def test_paper_variant_outputs_normalised_codewords():
    official = _pq(dim=16, m=4, k=6, seed=3)
    paper = _pq(dim=16, m=4, k=6, seed=3, variant="paper")
    torch.testing.assert_close(official.codebooks, paper.codebooks)
    x = torch.randn(2, 16, 3, 3)
    o, p = official(x), paper(x)
    torch.testing.assert_close(o.codes, p.codes)  # Eq. 2 identical
    e_norm = F.normalize(paper.codebooks.detach(), dim=-1)
    for i in range(4):
        expected = e_norm[i][p.codes[:, i]].permute(0, 3, 1, 2)
        torch.testing.assert_close(p.quantized[:, 4 * i:4 * (i + 1)], expected)
    z_norm = torch.cat([F.normalize(c, dim=1) for c in torch.chunk(x, 4, dim=1)], 1)
    ref = torch.cat([e_norm[i][p.codes[:, i]].permute(0, 3, 1, 2) for i in range(4)], 1)
    torch.testing.assert_close(p.codebook_loss, F.mse_loss(ref, z_norm))


def test_chunked_assignment_equals_single_block():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(3, 50, 4), dim=-1)
    books = F.normalize(torch.randn(3, 9, 4), dim=-1)
    full = assign(z, books)
    for chunk in (1, 27, 100, 10 ** 9):
        torch.testing.assert_close(assign(z, books, chunk_elements=chunk), full)
    brute = ((z[:, :, None, :] - books[:, None, :, :]) ** 2).sum(-1).argmin(-1)
    torch.testing.assert_close(full, brute)


def test_normalize_none_searches_raw_vectors():
    """normalize=False (official `normalize: none`, COCO-27 @6adb9cc): Eq. 2's nearest codeword
    by raw squared distance (brute force), and the losses on raw vectors."""
    torch.manual_seed(0)
    pq = ProductQuantizer(dim=12, num_codebooks=3, codebook_size=5, normalize=False).train()
    x = torch.randn(2, 12, 3, 4) * 3
    out = pq(x)  # first training forward: xavier re-init, then quantise
    cb = pq.codebooks.detach()
    sub = x.reshape(2, 3, 4, 12).permute(0, 1, 3, 2)  # (B, M, HW, d)
    ref = torch.cdist(sub.double(), cb.double()[None].expand(2, -1, -1, -1)).argmin(-1)  # (B, M, HW)
    assert torch.equal(out.codes.reshape(2, 3, 12), ref)
    zq = torch.stack([cb[m][ref[:, m]] for m in range(3)], 1).permute(0, 1, 3, 2).reshape(2, 12, 3, 4)
    torch.testing.assert_close(out.quantized, zq, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.commitment_loss, ((x - zq) ** 2).mean(), atol=1e-6, rtol=1e-5)
