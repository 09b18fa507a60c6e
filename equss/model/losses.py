"""STEGO's contrastive correlation loss (L_head of EQUSS Eq. 5).

Source: STEGO ``mhamilton723/STEGO@eb4d6b5``, ``src/modules.py``: ``norm``,
``tensor_correlation``, ``sample``, ``super_perm``, ``ContrastiveCorrelationLoss``
(``helper`` and ``forward`` without salience), combined as in
``src/train_segmentation.py`` (``training_step``: weighted sum of the three term means).
The official EQUSS copy (``pitlover/...@da82dea``, ``model/loss.py``, ``STEGOLoss``) is the
same computation and returns the weighted sum directly; EQUSS applies it to the
continuous head output (before quantisation).

Order of random draws in :meth:`CorrelationLoss.forward` (relevant for reproducing a
computation with the same ``torch.Generator``): ``coords1``, ``coords2`` (each
``sample_coords``), then one ``super_perm`` per negative sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["norm", "tensor_correlation", "feature_correlation", "sample_coords", "sample", "super_perm",
           "correlation_term", "CorrelationLoss", "CorrelationLossOutput"]


def norm(t: torch.Tensor) -> torch.Tensor:
    """L2-normalise over channels (dim 1), eps 1e-10 as STEGO."""
    return F.normalize(t, dim=1, eps=1e-10)


def tensor_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) x (B, C, i, j) -> (B, h, w, i, j) channel dot products."""
    return torch.einsum("nchw,ncij->nhwij", a, b)


def sample_coords(batch: int, feature_samples: int, generator: Optional[torch.Generator] = None,
                  device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform random coordinates in [-1, 1], shape (batch, S, S, 2)."""
    u = torch.rand((batch, feature_samples, feature_samples, 2), generator=generator,
                   device=device, dtype=dtype)
    return u * 2 - 1


def sample(t: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``t`` (B, C, H, W) at ``coords`` (B, S, S, 2) -> (B, C, S, S).

    As STEGO: ``grid_sample(t, coords.permute(0, 2, 1, 3), padding_mode="border",
    align_corners=True)`` (note the transposed grid; output[..., a, b] is taken at
    ``coords[:, b, a]``).
    """
    return F.grid_sample(t, coords.permute(0, 2, 1, 3).to(t.dtype), mode="bilinear",
                         padding_mode="border", align_corners=True)


def super_perm(size: int, generator: Optional[torch.Generator] = None,
               device: Optional[torch.device] = None) -> torch.Tensor:
    """STEGO's negative pairing: a random index map with no fixed point.

    ``p = randperm(size)``; every ``i`` with ``p[i] == i`` is moved to ``(i + 1) % size``.
    So ``p[i] != i`` always (for ``size >= 2``), but the result is not always a
    bijection (two images can draw the same partner), exactly as in STEGO.
    """
    if size < 2:
        raise ValueError(f"negative pairs need a batch of at least 2 images, got {size}; "
                         "use batch size >= 2 or neg_samples=0")
    perm = torch.randperm(size, generator=generator, device=device)
    idx = torch.arange(size, device=perm.device)
    perm = torch.where(perm == idx, perm + 1, perm)
    return perm % size


@torch.no_grad()
def feature_correlation(f1: torch.Tensor, f2: torch.Tensor, pointwise: bool = True) -> torch.Tensor:
    """STEGO's fd: correlation of L2-normalised backbone features, (B, h, w, i, j).

    ``pointwise``: subtract, per query location, the mean over the second image's
    positions, then add back the global mean (STEGO ``helper``, src/modules.py @eb4d6b5).
    """
    fd = tensor_correlation(norm(f1), norm(f2))
    return _pointwise_centre(fd, second=(3, 4), whole=(0, 1, 2, 3, 4)) if pointwise else fd


def _pointwise_centre(fd: torch.Tensor, second: tuple, whole: tuple) -> torch.Tensor:
    """STEGO's pointwise centring of fd: subtract, per query location, the mean over the second
    image's positions (dims ``second``), then restore the mean over dims ``whole``."""
    old_mean = fd.mean(dim=whole, keepdim=True)
    fd = fd - fd.mean(dim=second, keepdim=True)
    return fd - fd.mean(dim=whole, keepdim=True) + old_mean


def _shifted_loss(cd: torch.Tensor, fd: torch.Tensor, shift, zero_clamp: bool, stabilize: bool) -> torch.Tensor:
    """``-clamp(cd) * (fd - shift)``: cd clamped at 0 (else -9999) from below, at 0.8 from above
    with ``stabilize`` (STEGO ``helper``)."""
    min_val = 0.0 if zero_clamp else -9999.0
    return -(cd.clamp(min_val, 0.8) if stabilize else cd.clamp(min_val)) * (fd - shift)


def correlation_term(f1: torch.Tensor, f2: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor,
                     shift: float, pointwise: bool = True, zero_clamp: bool = True,
                     stabilize: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """STEGO ``ContrastiveCorrelationLoss.helper``: per-pair loss and code correlation.

    Args:
        f1, f2: (B, C, h, w) / (B, C, i, j) sampled backbone features (no gradient).
        c1, c2: sampled head outputs (codes), same spatial shapes.
        shift: b in ``-max(cd, 0) * (fd - b)``.
        pointwise: centre fd per query location: subtract its mean over the second
            image's positions (i, j), then shift everything so the global mean of fd
            is the one before centring.
        zero_clamp: clamp cd at 0 from below (else at -9999, as STEGO).
        stabilize: also clamp cd at 0.8 from above.

    Returns:
        ``(loss, cd)``, both (B, h, w, i, j); ``loss = -clamp(cd) * (fd - shift)``.
    """
    fd = feature_correlation(f1, f2, pointwise)
    cd = tensor_correlation(norm(c1), norm(c2))
    return _shifted_loss(cd, fd, shift, zero_clamp, stabilize), cd


@dataclass
class CorrelationLossOutput:
    """Weighted total and the three term means (and mean code correlations)."""

    loss: torch.Tensor
    pos_intra: torch.Tensor
    pos_inter: torch.Tensor
    neg_inter: torch.Tensor
    pos_intra_cd: torch.Tensor
    pos_inter_cd: torch.Tensor
    neg_inter_cd: torch.Tensor


class CorrelationLoss(nn.Module):
    """STEGO contrastive correlation loss over intra, kNN-inter and negative pairs.

    ``loss = pos_intra_weight * mean(intra) + pos_inter_weight * mean(inter)
    + neg_inter_weight * mean(neg)`` where

    * intra: image with itself at ``coords1``;
    * inter: image at ``coords1`` with its positive (kNN neighbour) at ``coords2``;
    * neg: image at ``coords1`` with ``neg_samples`` partners drawn by :func:`super_perm`,
      sampled at ``coords2`` (coordinates of the image's own batch slot, as STEGO).

    STEGO multiplies the total by ``correspondence_weight`` (1.0 in its configs); apply
    that outside if needed.
    """

    def __init__(self, pos_intra_weight: float, pos_inter_weight: float, neg_inter_weight: float,
                 pos_intra_shift: float, pos_inter_shift: float, neg_inter_shift: float,
                 feature_samples: int = 11, neg_samples: int = 5, pointwise: bool = True,
                 zero_clamp: bool = True, stabilize: bool = False) -> None:
        super().__init__()
        if feature_samples < 1:
            raise ValueError(f"feature_samples must be >= 1, got {feature_samples}")
        if neg_samples < 0:
            raise ValueError(f"neg_samples must be >= 0, got {neg_samples}")
        self.pos_intra_weight = pos_intra_weight
        self.pos_inter_weight = pos_inter_weight
        self.neg_inter_weight = neg_inter_weight
        self.pos_intra_shift = pos_intra_shift
        self.pos_inter_shift = pos_inter_shift
        self.neg_inter_shift = neg_inter_shift
        self.feature_samples = feature_samples
        self.neg_samples = neg_samples
        self.pointwise = pointwise
        self.zero_clamp = zero_clamp
        self.stabilize = stabilize

    def extra_repr(self) -> str:
        return (f"weights(intra/inter/neg)={self.pos_intra_weight}/{self.pos_inter_weight}/"
                f"{self.neg_inter_weight}, shifts={self.pos_intra_shift}/{self.pos_inter_shift}/"
                f"{self.neg_inter_shift}, S={self.feature_samples}, neg={self.neg_samples}")

    def forward(self, feats: torch.Tensor, feats_pos: torch.Tensor, code: torch.Tensor,
                code_pos: torch.Tensor, generator: Optional[torch.Generator] = None) -> CorrelationLossOutput:
        """feats/feats_pos: (B, C, H, W) backbone features of images and their positives;
        code/code_pos: (B, D, H', W') head outputs.  Random draws use ``generator``.

        Computed as STEGO's seven :func:`correlation_term` calls (intra, inter, one per
        negative), but each sampled set is normalised once and all seven correlations of a
        query set share one batched matmul: ``f1``/``c1`` (the image at ``coords1``) against
        the stacked second sets [itself, positive, negatives].  Same numbers up to float
        rounding (tests/test_losses.py compares with the term-by-term computation).  Runs in
        fp32 under autocast (the fd statistic and its shift are sign-sensitive).
        """
        b = feats.shape[0]
        if feats_pos.shape[0] != b or code.shape[0] != b or code_pos.shape[0] != b:
            raise ValueError("feats, feats_pos, code and code_pos need the same batch size")
        if self.neg_samples > 0 and b < 2:
            raise ValueError(f"CorrelationLoss needs a batch of at least 2 images for negatives, got {b}")
        dev = feats.device
        coords1 = sample_coords(b, self.feature_samples, generator, dev)
        coords2 = sample_coords(b, self.feature_samples, generator, dev)
        perms = [super_perm(b, generator, dev) for _ in range(self.neg_samples)]
        with torch.autocast(dev.type, enabled=False):
            feats, feats_pos, code, code_pos = (t.float() for t in (feats, feats_pos, code, code_pos))
            with torch.no_grad():
                f1 = norm(sample(feats, coords1))
                f2 = [norm(sample(feats_pos, coords2))]
                if perms:
                    idx = torch.cat(perms)
                    coords_neg = coords2.repeat(len(perms), 1, 1, 1)
                    f2.append(norm(sample(feats.index_select(0, idx), coords_neg)))
            c1 = norm(sample(code, coords1))
            # second sets, g-major: the positive at coords2, then each negative partner at coords2
            c2 = [norm(sample(code_pos, coords2))]
            if perms:
                c2.append(norm(sample(code.index_select(0, idx), coords_neg)))
            n_sets = 2 + len(perms)
            with torch.no_grad():  # fd: feature_correlation of each term, (G, B, P, Q)
                fd = _grouped_correlation(f1, torch.cat([f1] + f2), n_sets)
                if self.pointwise:  # per term: its own (B, P, Q) block, as feature_correlation
                    fd = _pointwise_centre(fd, second=(3,), whole=(1, 2, 3))
            cd = _grouped_correlation(c1, torch.cat([c1] + c2), n_sets)
            shifts = torch.tensor([self.pos_intra_shift, self.pos_inter_shift]
                                  + [self.neg_inter_shift] * len(perms), device=dev).view(-1, 1, 1, 1)
            loss = _shifted_loss(cd, fd, shifts, self.zero_clamp, self.stabilize)
            intra, inter = loss[0].mean(), loss[1].mean()
            zero = intra.new_zeros(())
            neg = loss[2:].mean() if perms else zero
            neg_cd = cd[2:].mean() if perms else zero
            total = self.pos_intra_weight * intra + self.pos_inter_weight * inter + self.neg_inter_weight * neg
        return CorrelationLossOutput(loss=total, pos_intra=intra, pos_inter=inter, neg_inter=neg,
                                     pos_intra_cd=cd[0].mean(), pos_inter_cd=cd[1].mean(), neg_inter_cd=neg_cd)


def _grouped_correlation(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """``tensor_correlation(a, b_g)`` for each of the ``groups`` stacked second sets
    ``b = cat([b_0, ..., b_{G-1}])`` (each (B, C, i, j)), as (G, B, h*w, i*j) from one
    batched matmul of ``a`` (B, C, h, w) against all of them."""
    n, c = a.shape[:2]
    left = a.reshape(n, c, -1).transpose(1, 2)  # (B, P, C)
    right = b.reshape(groups, n, c, -1).permute(1, 2, 0, 3).reshape(n, c, -1)  # (B, C, G*Q)
    q = b.shape[-2] * b.shape[-1]
    return torch.bmm(left, right).view(n, -1, groups, q).permute(2, 0, 1, 3)
