"""Probes on bilinearly upsampled features, without materialising the upsampled features.

Evaluation (STEGO/EQUSS protocol) upsamples the probe input (d_E = 1024 channels) to the
label size before the probes.  Both probes commute with that upsampling: the linear
probe is a 1x1 convolution (bilinear weights sum to 1, so ``conv(up(x)) = up(conv(x))``);
the cluster probe is ``<up(x), c_k> / max(|up(x)|, eps)`` with ``<up(x), c_k> =
up(<x, c_k>)`` and ``|up(x)|^2`` from :func:`upsampled_sq_norm`.  Same numbers up to
float rounding (tests/test_model.py), ~20x less time and memory at full size.
"""
from __future__ import annotations

import torch


def _bilinear_index(n_in: int, n_out: int, device=None):
    """PyTorch's bilinear (``align_corners=False``) source indices and weight of the second one."""
    src = ((torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).float()


def upsampled_sq_norm(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``|bilinear_upsample(x)|^2`` over channels, (B, H, W), without upsampling the channels.

    An upsampled pixel is ``sum_p w_p x_p`` over (at most) 4 neighbours, so its squared
    norm is ``sum_pq w_p w_q <x_p, x_q>``: the 4 self and 6 pair products are computed
    once at feature resolution and combined with the bilinear weights at full size.
    """
    h, w = x.shape[-2:]
    yn = (torch.arange(h, device=x.device) + 1).clamp_max(h - 1)
    xn = (torch.arange(w, device=x.device) + 1).clamp_max(w - 1)
    right, down = x[..., :, xn], x[..., yn, :]
    S = (x * x).sum(1)
    Hm = (x * right).sum(1)           # <x[y, x], x[y, x+1]>
    Vm = (x * down).sum(1)            # <x[y, x], x[y+1, x]>
    D1 = (x * down[..., :, xn]).sum(1)  # <x[y, x], x[y+1, x+1]>
    D2 = (right * down).sum(1)        # <x[y, x+1], x[y+1, x]>
    y0, y1, ly = _bilinear_index(h, size[0], x.device)
    x0, x1, lx = _bilinear_index(w, size[1], x.device)
    a0, a1 = (1 - ly)[:, None], ly[:, None]
    b0, b1 = (1 - lx)[None, :], lx[None, :]

    def at(m, yi, xi):
        return m[:, yi][:, :, xi]

    n2 = ((a0 * b0) ** 2 * at(S, y0, x0) + (a0 * b1) ** 2 * at(S, y0, x1)
          + (a1 * b0) ** 2 * at(S, y1, x0) + (a1 * b1) ** 2 * at(S, y1, x1)
          + 2 * a0 * a0 * b0 * b1 * at(Hm, y0, x0) + 2 * a1 * a1 * b0 * b1 * at(Hm, y1, x0)
          + 2 * a0 * a1 * b0 * b0 * at(Vm, y0, x0) + 2 * a0 * a1 * b1 * b1 * at(Vm, y0, x1)
          + 2 * a0 * a1 * b0 * b1 * (at(D1, y0, x0) + at(D2, y0, x0)))
    return n2.clamp_min(0)


def cluster_inner_products(x: torch.Tensor, clusters: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cosine of ``bilinear_upsample(x, size)`` with the (unnormalised) ``clusters`` (n, C):
    (B, n, H, W), equal to STEGO's ClusterLookup inner products on the upsampled features."""
    import torch.nn.functional as F

    centroids = F.normalize(clusters, dim=1)
    dots = torch.einsum("bchw,nc->bnhw", x, centroids)
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) != size:
        dots = F.interpolate(dots, size, mode="bilinear", align_corners=False)
        norm = upsampled_sq_norm(x, size).sqrt()
    else:
        norm = x.norm(dim=1)
    return dots / norm.clamp_min(1e-12)[:, None]
