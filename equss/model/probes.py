"""Evaluation probes trained on detached head outputs: cluster probe and linear probe.

Both follow STEGO (``mhamilton723/STEGO@eb4d6b5``):

* :class:`ClusterProbe` is ``src/modules.py`` ``ClusterLookup``: ``n_classes`` learnable
  centroids (``randn`` init), cosine similarity between L2-normalised features and
  L2-normalised centroids.  Training uses the hard-assignment loss
  (``ClusterLookup(x, alpha=None)``); evaluation uses ``log_softmax(inner * 2)``
  (``src/eval_segmentation.py``: ``cluster_probe(code, 2, log_probs=True)``).
* :class:`LinearProbe` is the ``nn.Conv2d(dim, n_classes, (1, 1))`` of
  ``src/train_segmentation.py``.  Its training loss **upsamples the logits** bilinearly
  (``align_corners=False``) to the label size, keeps pixels with ``0 <= label <
  n_classes`` and takes the mean cross-entropy over them.

The official EQUSS code (``pitlover/...@da82dea``) trains the same two probes on the
quantised output (Adam 3e-3).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ClusterProbe", "LinearProbe"]


class ClusterProbe(nn.Module):
    """Cosine k-means probe (STEGO ``ClusterLookup``).

    Args:
        dim: feature channels.
        n_classes: number of clusters (STEGO uses ``n_classes + extra_clusters``).
    """

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.dim = dim
        self.n_classes = n_classes
        self.clusters = nn.Parameter(torch.randn(n_classes, dim))

    def reset_parameters(self) -> None:
        """Redraw the centroids from ``randn`` (STEGO ``reset_parameters``)."""
        with torch.no_grad():
            self.clusters.copy_(torch.randn(self.n_classes, self.dim, device=self.clusters.device))

    def inner_products(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Cosine similarities ``(B, n_classes, H, W)`` for features ``x`` of ``(B, dim, H, W)``.

        With ``size``: those of ``bilinear_upsample(x, size)`` (``align_corners=False``),
        computed without materialising the upsampled ``dim`` channels
        (:func:`equss.model.upsample.cluster_inner_products`; equal up to float rounding).
        """
        if size is not None and tuple(x.shape[-2:]) != tuple(int(s) for s in size):
            from equss.model.upsample import cluster_inner_products

            return cluster_inner_products(x, self.clusters, size)
        centroids = F.normalize(self.clusters, dim=1)
        feats = F.normalize(x, dim=1)
        return torch.einsum("bchw,nc->bnhw", feats, centroids)

    def forward(self, x: torch.Tensor, alpha: float | None = None, size: tuple[int, int] | None = None):
        """``(loss, probs)`` exactly as ``ClusterLookup(x, alpha)`` (on ``x`` upsampled
        bilinearly to ``size`` when given, see :meth:`inner_products`).

        ``alpha=None``: probs are the one-hot of the argmax (float32) and the loss is
        ``-(one_hot * inner).sum(1).mean()``; otherwise probs are
        ``softmax(inner * alpha)`` and the loss uses those soft assignments.
        """
        inner = self.inner_products(x, size)
        if alpha is None:
            probs = F.one_hot(inner.argmax(1), self.n_classes).permute(0, 3, 1, 2).to(torch.float32)
        else:
            probs = F.softmax(inner * alpha, dim=1)
        loss = -(probs * inner).sum(1).mean()
        return loss, probs

    def loss(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """STEGO's unsupervised training loss (hard assignment, ``alpha=None``), on ``x``
        upsampled to ``size`` when given."""
        return self(x, None, size)[0]

    def log_probs(self, x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
        """``log_softmax(inner * alpha)`` over clusters, STEGO's evaluation path (alpha 2)."""
        return F.log_softmax(self.inner_products(x) * alpha, dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster index per pixel ``(B, H, W)``."""
        return self.inner_products(x).argmax(1)


class LinearProbe(nn.Module):
    """Supervised 1x1-conv probe (STEGO ``linear_probe``)."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.conv = nn.Conv2d(dim, n_classes, (1, 1))

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H, W)`` (no channels for a dataset without classes: an
        unlabelled image folder trains the cluster probe only)."""
        if self.n_classes == 0:
            return x.new_zeros((x.shape[0], 0) + tuple(x.shape[2:]))
        return self.conv(x)

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over valid pixels, logits upsampled to the label size.

        As in STEGO ``train_segmentation.py``: bilinear, ``align_corners=False``;
        valid means ``0 <= label < n_classes`` (so -1 is ignored).  Where no pixel is
        valid this returns 0 (with a graph) instead of STEGO's NaN.
        """
        if self.n_classes == 0:  # no classes, nothing to learn
            return x.sum() * 0.0
        logits = self(x)
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, labels.shape[-2:], mode="bilinear", align_corners=False)
        flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, self.n_classes)
        flat_labels = labels.reshape(-1).long()
        mask = (flat_labels >= 0) & (flat_labels < self.n_classes)
        if not bool(mask.any()):
            return flat_logits.sum() * 0.0
        return F.cross_entropy(flat_logits[mask], flat_labels[mask])
