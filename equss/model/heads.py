"""Projection heads: STEGO's segmentation head and the EQUSS expansion head.

Both papers use the same head shape, only the output width differs:

* STEGO (``mhamilton723/STEGO@eb4d6b5``, ``src/modules.py``, ``DinoFeaturizer``:
  ``make_clusterer`` / ``make_nonlinear_clusterer``, ``proj_type="nonlinear"``):
  ``code = conv1x1(in->out)(f) + [conv1x1(in->in), ReLU, conv1x1(in->out)](f)`` with
  ``Dropout2d(0.1)`` on the backbone features, output width 70.
* EQUSS (``pitlover/Expand-and-Quantize-for-Unsupervised-Semantic-Segmentation@da82dea``,
  ``model/dino_pqgo.py``, ``DIONPQGO.__init__``/``forward``: ``cluster1`` + ``cluster2``):
  the same two branches with output width d_E (e.g. 1024, the "expand" step), and a
  single ``Dropout2d(drop_prob)`` applied once to the backbone features before both
  branches.

One small difference between the two official codes: STEGO calls its dropout module
separately for each branch (two independent channel masks in training), EQUSS drops once
and feeds the same dropped features to both branches.  The default here is EQUSS's
shared mask; ``dropout_per_branch=True`` reproduces STEGO's.  In eval mode both are the
identity and the outputs are identical.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """Linear plus nonlinear 1x1-conv head, ``(B, in_dim, H, W) -> (B, out_dim, H, W)``.

    ``out = linear(drop(x)) + nonlinear(drop(x))`` where ``linear`` is a 1x1 conv
    ``in_dim -> out_dim`` and ``nonlinear`` is 1x1 conv ``in_dim -> in_dim``, ReLU,
    1x1 conv ``in_dim -> out_dim`` (all with bias).  Parameter count:
    ``2*in_dim*out_dim + in_dim**2 + in_dim + 2*out_dim``.

    Args:
        in_dim: backbone feature width (384 for ViT-S).
        out_dim: output width (70 for STEGO, d_E such as 1024 for EQUSS).
        dropout: ``Dropout2d`` probability on the input features (0.1 in both papers).
        dropout_per_branch: draw an independent dropout mask per branch (STEGO) instead
            of one shared mask (EQUSS, default).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1,
                 dropout_per_branch: bool = False) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"ProjectionHead needs positive widths, got in_dim={in_dim}, out_dim={out_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.dropout_per_branch = dropout_per_branch
        self.dropout = nn.Dropout2d(dropout)
        self.linear = nn.Conv2d(in_dim, out_dim, kernel_size=1)
        self.nonlinear = nn.Sequential(
            nn.Conv2d(in_dim, in_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(in_dim, out_dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_dim:
            raise ValueError(f"ProjectionHead expects (B, {self.in_dim}, H, W), got {tuple(x.shape)}")
        if self.dropout_per_branch:
            return self.linear(self.dropout(x)) + self.nonlinear(self.dropout(x))
        return self.project(self.dropout(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The two summed branches without dropout (for inputs already dropped out)."""
        return self.linear(x) + self.nonlinear(x)

    @staticmethod
    def num_parameters(in_dim: int, out_dim: int) -> int:
        """Closed-form parameter count of a head with these widths."""
        return 2 * in_dim * out_dim + in_dim * in_dim + in_dim + 2 * out_dim
