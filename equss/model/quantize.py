"""Product quantisation of the expanded head output (EQUSS Eq. 1-4).

Source of the semantics: official EQUSS
``pitlover/Expand-and-Quantize-for-Unsupervised-Semantic-Segmentation@da82dea``,
``model/dino_pqgo.py``, classes ``Codebook`` (``vq_type: "param"``, ``normalize: "l2"``)
and ``ProductQuantizerWrapper``; presets ``config/*/pqgo_baseline.yaml``
(``book: 1.0``, ``beta: 0.25``, ``need_initialized: "uni"``).  Note the naming there:
``num_pq`` is M (number of codebooks) and ``num_codebooks`` is K (codewords per book).

What the official code does, per codebook m (M independent ``Codebook`` modules):

* Eq. 1: ``torch.chunk(z, M, dim=1)``: contiguous channel blocks of ``dim // M``.
* Eq. 2: ``z_norm = normalize(z_m)``, ``e_norm = normalize(E_m)`` (rows), index =
  argmin of ``|z_norm|^2 + |e_norm|^2 - 2 z_norm.e_norm``.
* The selected value is the RAW embedding row ``E_m[k]`` (``self.embedding(idx)``), not
  the normalised one.
* Eq. 3-4: ``codebook_loss = mse(E_m[k], sg[z_norm])``,
  ``commitment_loss = mse(z_norm, sg[E_m[k]])``; ``vq-loss = book * codebook +
  beta * commitment``; every output is averaged over the M codebooks
  (``outputs[k] /= num_pq``).  Because every codebook has the same number of elements,
  this equals one MSE over all elements, which is what is computed here.
* Straight-through: ``z_q = z_norm + sg[E_m[k] - z_norm]``: the forward value is the raw
  codeword (up to the rounding of that sum, as officially), the gradient w.r.t. the
  input goes through the L2 normalisation.  Written as plain autograd (as
  vector-quantize-pytorch): an earlier fused ``autograd.Function`` was about 1.2x faster
  on the quantiser alone, which is a few per cent of a training step (benchmarks/bench_pq.py).
* Initialisation: ``nn.Embedding`` rows set to ``U(-1/K, 1/K)`` at construction, then
  (``need_initialized: "uni"``) re-drawn once with ``xavier_uniform_`` at the first
  forward in training mode (bound ``sqrt(6 / (K + dim/M))``).  Officially the "done"
  flag is a plain attribute; here it is the persistent buffer ``initialized`` so that a
  loaded checkpoint is never re-initialised.  Eval-mode forwards never initialise.
* ``codebook-usage``: fraction of the K codewords hit in the batch, averaged over M.
* The config's ``use_gumbel: true`` (Cityscapes preset) is never forwarded to the
  ``Codebook`` modules by ``ProductQuantizerWrapper``, so it has no effect; ignored here.

``variant="paper"`` follows the paper text literally where it differs: Eq. 2 defines the
quantised vector as the (L2-normalised) codeword that wins the normalised distance, so
the output and both losses use the normalised codeword ``normalize(E_m[k])`` (gradients
reach the raw parameters through the normalisation).  Assignment (Eq. 2) is identical in
both variants.  The default is the official code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PQOutput", "ProductQuantizer", "assign"]

_INITS = ("xavier_uniform", "uniform")
_VARIANTS = ("official", "paper")


@dataclass
class PQOutput:
    """Result of :meth:`ProductQuantizer.forward`.

    quantized: (B, dim, H, W) straight-through quantised features.
    codes: (B, M, H, W) int64 codeword index per codebook (Eq. 8's combination).
    codebook_loss, commitment_loss: scalar MSEs (Eq. 3, Eq. 4), averaged over codebooks.
    loss: ``codebook_weight * codebook_loss + commitment_weight * commitment_loss``.
    usage: scalar, fraction of codewords used in this batch, averaged over codebooks.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    loss: torch.Tensor
    usage: torch.Tensor


@torch.no_grad()
def assign(z_norm: torch.Tensor, codebooks_norm: torch.Tensor,
           chunk_elements: int = 1 << 22) -> torch.Tensor:
    """Eq. 2: nearest codeword per codebook by squared distance on normalised vectors.

    Args:
        z_norm: (..., M, N, d) L2-normalised subvectors, one row per position; any
            strides (``ProductQuantizer`` passes the free transposed view (B, M, H*W, d)
            of its native (B, M, d, H*W) layout, no copy).
        codebooks_norm: (M, K, d) L2-normalised codewords.
        chunk_elements: positions are processed in chunks whose (M, n, K) score block
            has at most this many elements (bounds memory; a cache-sized block is also
            several times faster on CPU than one huge block).

    Returns:
        (..., M, N) int64 indices ``argmin_k |z_norm - e_norm_k|^2`` (first index on
        ties).  Computed as ``argmax_k (2 z_norm.e_norm_k - |e_norm_k|^2)``: the dropped
        term ``|z_norm|^2`` is constant per row; ``|e_norm_k|^2`` is 1 except for an
        all-zero codeword and is kept.  All M codebooks in one ``baddbmm`` per chunk.
    """
    *lead, m, n_pos, d = z_norm.shape
    k = codebooks_norm.shape[1]
    z3 = z_norm.reshape(-1, m, n_pos, d)  # a view for the layouts used here
    bias = codebooks_norm.pow(2).sum(-1).neg().unsqueeze(1)  # (M, 1, K)
    cb_t = codebooks_norm.transpose(1, 2)  # (M, d, K)
    step = max(1, min(n_pos, chunk_elements // max(1, m * k)))
    codes = torch.empty(z3.shape[0], m, n_pos, dtype=torch.long, device=z_norm.device)
    buf = torch.empty(m, step, k, dtype=z_norm.dtype, device=z_norm.device)
    for g in range(z3.shape[0]):
        for start in range(0, n_pos, step):
            zc = z3[g, :, start:start + step]
            scores = buf[:, :zc.shape[1]]
            torch.baddbmm(bias, zc, cb_t, beta=1.0, alpha=2.0, out=scores)
            codes[g, :, start:start + step] = scores.max(dim=-1).indices
    return codes.view(*lead, m, n_pos)


class ProductQuantizer(nn.Module):
    """M product codebooks of K codewords over ``dim // M``-wide subvectors (Eq. 1-4).

    Args:
        dim: input channels (d_E).
        num_codebooks: M.
        codebook_size: K.
        codebook_weight: weight of the codebook loss (official ``book``, 1.0).
        commitment_weight: weight of the commitment loss (official ``beta``, 0.25).
        init: ``"xavier_uniform"`` (official preset ``need_initialized: "uni"``:
            re-draw once at the first training forward) or ``"uniform"`` (keep the
            construction-time ``U(-1/K, 1/K)``, official ``"none"``).
        variant: ``"official"`` (raw codeword output) or ``"paper"`` (normalised
            codeword output and losses); see the module docstring.
        normalize: L2-normalise subvectors and codewords before Eq. 2's distance (official
            ``normalize: "l2"``, default); False keeps them raw (``normalize: "none"``, the
            official COCO-27 config @6adb9cc: distances, losses and output on raw vectors).

    Attributes:
        codebooks: one ``nn.Parameter`` of shape (M, K, dim // M).
        initialized: bool buffer, True once the xavier re-initialisation has run.
    """

    def __init__(self, dim: int, num_codebooks: int, codebook_size: int,
                 codebook_weight: float = 1.0, commitment_weight: float = 0.25,
                 init: str = "xavier_uniform", variant: str = "official", normalize: bool = True) -> None:
        super().__init__()
        if num_codebooks < 1:
            raise ValueError(f"num_codebooks (M) must be >= 1, got {num_codebooks}")
        if codebook_size < 1:
            raise ValueError(f"codebook_size (K) must be >= 1, got {codebook_size}")
        if dim < 1 or dim % num_codebooks != 0:
            raise ValueError(
                f"dim {dim} must be a positive multiple of num_codebooks (M) {num_codebooks}; "
                f"choose M among the divisors of {dim}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
        self.dim = dim
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.sub_dim = dim // num_codebooks
        self.codebook_weight = codebook_weight
        self.commitment_weight = commitment_weight
        self.init = init
        self.variant = variant
        self.normalize = bool(normalize)
        self.codebooks = nn.Parameter(torch.empty(num_codebooks, codebook_size, self.sub_dim))
        bound = 1.0 / codebook_size  # official nn.Embedding re-init at construction
        nn.init.uniform_(self.codebooks, -bound, bound)
        self.register_buffer("initialized", torch.tensor(init != "xavier_uniform"))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, M={self.num_codebooks}, K={self.codebook_size}, "
                f"variant={self.variant!r}, init={self.init!r}, normalize={self.normalize}")

    def _norm(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        return F.normalize(t, dim=dim) if self.normalize else t

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Xavier-uniform draw of every codebook, as ``nn.init.xavier_uniform_`` on each
        (K, dim/M) embedding matrix: ``U(-b, b)``, ``b = sqrt(6 / (K + dim/M))``."""
        bound = math.sqrt(6.0 / (self.codebook_size + self.sub_dim))
        self.codebooks.uniform_(-bound, bound, generator=generator)
        self.initialized.fill_(True)

    # -- layout helpers ---------------------------------------------------------------
    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1: (B, dim, H, W) -> (B, M, dim/M, H*W), contiguous channel chunks (a view
        of a contiguous input, no copy)."""
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"ProductQuantizer expects (B, {self.dim}, H, W), got {tuple(x.shape)}")
        b, _, h, w = x.shape
        return x.to(self.codebooks.dtype).reshape(b, self.num_codebooks, self.sub_dim, h * w)

    # -- public API -------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes only, (B, M, H, W) int64; never initialises or changes state."""
        z = self._norm(self._split(x), 2)
        codes = assign(z.transpose(2, 3), self._norm(self.codebooks, -1))
        return codes.view(x.shape[0], self.num_codebooks, *x.shape[2:])

    def forward(self, x: torch.Tensor) -> PQOutput:
        """Eq. 1-4, always in float32 (autocast off): the assignment is sensitive to near-ties
        and the losses are MSEs of near-equal vectors; the head before it may run in bf16."""
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> PQOutput:
        if self.training and not bool(self.initialized):
            self.reset_parameters()
        z = self._norm(self._split(x), 2)  # (B, M, d, HW): Eq. 1 subvectors, L2-normalised
        cb_norm = self._norm(self.codebooks, -1)
        codes = assign(z.detach().transpose(2, 3), cb_norm.detach())  # (B, M, HW), Eq. 2
        table = self.codebooks if self.variant == "official" else cb_norm
        b, m, d, hw = z.shape
        # selected codewords (B, M, d, HW); a gather, whose backward (a scatter-add) is
        # deterministic on the CPU, unlike advanced indexing's (exact resume relies on it)
        z_q = torch.gather(table.transpose(1, 2).unsqueeze(0).expand(b, m, d, self.codebook_size), 3,
                           codes.unsqueeze(2).expand(b, m, d, hw))
        codebook_loss = F.mse_loss(z_q, z.detach())  # Eq. 3
        commitment_loss = F.mse_loss(z, z_q.detach())  # Eq. 4
        quantized = z + (z_q - z).detach()  # straight-through, as the official code
        loss = self.codebook_weight * codebook_loss + self.commitment_weight * commitment_loss
        with torch.no_grad():
            hit = torch.zeros(self.num_codebooks, self.codebook_size, device=x.device, dtype=torch.bool)
            hit.scatter_(1, codes.transpose(0, 1).reshape(self.num_codebooks, -1), True)
            usage = hit.float().mean()
        return PQOutput(
            quantized=quantized.reshape(x.shape),
            codes=codes.view(x.shape[0], self.num_codebooks, *x.shape[2:]),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            loss=loss,
            usage=usage,
        )
