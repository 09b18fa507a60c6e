"""The EQUSS model (and STEGO as its no-PQ, 70-dim configuration).

backbone features (B, 384, h, w)
  -> :class:`~equss.model.heads.ProjectionHead` (STEGO head; d_E-dim expansion for EQUSS)
  -> continuous code z (B, d_E, h, w): the STEGO correlation loss L_head is computed here
  -> optional :class:`~equss.model.quantize.ProductQuantizer` (Eq. 1-4)
  -> probe input (the quantised output, detached, as the official code: wrapper/PQGOWrapper.py
     @da82dea clones and detaches ``feat_vqs`` for the evaluator)
  -> cluster probe (unsupervised, Hungarian at eval) and linear probe (supervised, eval only).

Total objective (Eq. 5): stego_weight * L_head + vq_weight * (book * L_codebook + beta * L_commit),
plus the probe losses, which only reach the probes (detached input).  The backbone is
frozen and lives outside this module, so that training can run on cached features.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from equss.config import Config
from equss.model.heads import ProjectionHead
from equss.model.losses import CorrelationLoss
from equss.model.probes import ClusterProbe, LinearProbe
from equss.model.quantize import ProductQuantizer


@dataclass
class ModelOutput:
    code: torch.Tensor                 # continuous head output z (B, d_E, h, w)
    probe_input: torch.Tensor          # quantised output (or code without PQ), (B, d_E, h, w)
    codes: torch.Tensor | None         # PQ indices (B, M, h, w) or None
    vq: object | None                  # the quantiser's output object (losses, usage)


class EQUSS(nn.Module):
    """Head + optional product quantiser + probes.  ``cfg`` is a :class:`equss.config.Config`.

    Under autocast (``train.amp``: fp16 on CUDA, bf16 only on a CPU with native bf16, see
    :func:`equss.device.amp_dtype`) only the head runs in reduced precision; the product
    quantiser, the correlation loss and the probes run in fp32 on any hardware.
    """

    def __init__(self, cfg: Config, in_dim: int, n_classes: int):
        super().__init__()
        m, lc = cfg.model, cfg.loss
        self.cfg = cfg
        self.in_dim, self.n_classes = in_dim, n_classes
        self.head = ProjectionHead(in_dim, m.head_dim, dropout=m.dropout, dropout_per_branch=m.dropout_per_branch)
        self.quantizer = (
            ProductQuantizer(m.head_dim, m.num_codebooks, m.codebook_size,
                             codebook_weight=m.codebook_weight, commitment_weight=m.commitment_weight,
                             variant=m.pq_variant, normalize=m.pq_normalize == "l2")
            if m.pq else None
        )
        self.corr_loss = CorrelationLoss(
            lc.pos_intra_weight, lc.pos_inter_weight, lc.neg_inter_weight,
            lc.pos_intra_shift, lc.pos_inter_shift, lc.neg_inter_shift,
            feature_samples=lc.feature_samples, neg_samples=lc.neg_samples,
            pointwise=lc.pointwise, zero_clamp=lc.zero_clamp, stabilize=lc.stabilize,
        )
        self.cluster_probe = ClusterProbe(m.head_dim, n_classes + m.extra_clusters)
        self.linear_probe = LinearProbe(m.head_dim, n_classes)

    # ----------------------------------------------------------------- parameters
    def model_parameters(self):
        """Head and codebooks (Adam lr 3e-4, gradient clipping)."""
        params = list(self.head.parameters())
        if self.quantizer is not None:
            params += list(self.quantizer.parameters())
        return params

    # ----------------------------------------------------------------- forward
    def forward(self, feats: torch.Tensor) -> ModelOutput:
        return self._quantize(self.head(feats))

    def _quantize(self, code: torch.Tensor) -> ModelOutput:
        if self.quantizer is None:
            return ModelOutput(code=code, probe_input=code, codes=None, vq=None)
        vq = self.quantizer(code)
        return ModelOutput(code=code, probe_input=vq.quantized, codes=vq.codes, vq=vq)

    def training_losses(self, feats: torch.Tensor, feats_pos: torch.Tensor, labels: torch.Tensor,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """All losses of one training step (Eq. 5 + probe losses); ``total`` is what to backpropagate."""
        lc = self.cfg.loss
        if self.cfg.model.objective == "supervised":
            return self._supervised_losses(feats, labels)
        dropped = self.cfg.model.loss_on_dropped_features
        if dropped and not self.head.dropout_per_branch:
            # one dropout mask shared by the head and L_head's feature correlation (official)
            feats, feats_pos = self.head.dropout(feats), self.head.dropout(feats_pos)
            code, code_pos = self.head.project(feats), self.head.project(feats_pos)
        elif dropped:
            # STEGO: per image batch, one mask per branch, then a third on the features that
            # L_head correlates (DinoFeaturizer.forward: cluster1, cluster2, returned feat)
            code = self.head(feats)
            feats = self.head.dropout(feats)
            code_pos = self.head(feats_pos)
            feats_pos = self.head.dropout(feats_pos)
        else:
            code, code_pos = self.head(feats), self.head(feats_pos)
        out = self._quantize(code)
        corr = self.corr_loss(feats, feats_pos, out.code, code_pos, generator=generator)
        losses: dict[str, torch.Tensor] = {
            "corr": corr.loss,
            "pos_intra": corr.pos_intra, "pos_inter": corr.pos_inter, "neg_inter": corr.neg_inter,
        }
        model_loss = lc.stego_weight * corr.loss
        if out.vq is not None:
            losses["codebook"] = out.vq.codebook_loss
            losses["commitment"] = out.vq.commitment_loss
            losses["codebook_usage"] = out.vq.usage.detach()
            model_loss = model_loss + lc.vq_weight * out.vq.loss
        # probes on the detached quantised output (only the probes learn from them)
        losses.update(self._probe_losses(out.probe_input.detach(), labels))
        losses["model"] = model_loss
        losses["total"] = model_loss + losses["cluster"] + losses["linear"]
        return losses

    def _probe_losses(self, probe_in: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cluster and linear probe losses in fp32 (also under autocast; memory-bound anyway).
        With ``model.probe_upsample`` on the probe input as if upsampled to the label size
        (official), without materialising the upsampled d_E channels: the linear probe
        upsamples its logits, the cluster probe its dot products (exact up to float rounding,
        tests/test_model.py)."""
        probe_in = probe_in.float()
        size = labels.shape[-2:] if self.cfg.model.probe_upsample else None
        with torch.autocast(probe_in.device.type, enabled=False):
            return {"cluster": self.cluster_probe.loss(probe_in.detach(), size),
                    "linear": self.linear_probe.loss(probe_in, labels)}

    def _supervised_losses(self, feats, labels):
        """Fig. 2's supervised head: the linear probe's cross-entropy trains the head too
        (no correlation loss; the PQ losses still apply when PQ is on)."""
        out = self.forward(feats)
        losses = self._probe_losses(out.probe_input, labels)
        model_loss = losses["linear"]
        if out.vq is not None:
            losses["codebook"], losses["commitment"] = out.vq.codebook_loss, out.vq.commitment_loss
            losses["codebook_usage"] = out.vq.usage.detach()
            model_loss = model_loss + self.cfg.loss.vq_weight * out.vq.loss
        losses["corr"] = torch.zeros((), device=feats.device)
        losses["model"] = model_loss
        losses["total"] = model_loss + losses["cluster"]
        return losses

    @torch.no_grad()
    def predict(self, feats: torch.Tensor, size: tuple[int, int], feats_flipped: torch.Tensor | None = None,
                alpha: float = 2.0, materialize: bool = False) -> dict[str, torch.Tensor]:
        """Evaluation path: probe log-probabilities at ``size``.

        With ``feats_flipped`` (features of the horizontally flipped image) the probe input
        is averaged with its flipped-back twin, as STEGO's eval_segmentation.py does.  The
        probe input is upsampled (bilinear) to ``size`` before the probes, as the official
        evaluator; :mod:`equss.model.upsample` gets the same numbers without materialising the
        upsampled d_E channels (``materialize=True`` does it the literal way).
        """
        x = self.forward(feats).probe_input
        if feats_flipped is not None:
            x = (x + self.forward(feats_flipped).probe_input.flip(dims=[3])) / 2
        size = tuple(int(s) for s in size)
        if materialize:
            x = F.interpolate(x, size, mode="bilinear", align_corners=False)
            return {"cluster": self.cluster_probe.log_probs(x, alpha=alpha),
                    "linear": F.log_softmax(self.linear_probe(x), dim=1)}
        logits = self.linear_probe(x)
        if self.linear_probe.n_classes == 0:  # no classes (unlabelled folder): an empty linear output
            logits = x.new_zeros((x.shape[0], 0) + size)
        elif tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        inner = self.cluster_probe.inner_products(x, size)
        return {"cluster": F.log_softmax(inner * alpha, dim=1), "linear": F.log_softmax(logits, dim=1)}

    @torch.no_grad()
    def predict_labels(self, feats: torch.Tensor, size: tuple[int, int],
                       feats_flipped: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The argmax over classes of :meth:`predict`'s outputs, (B, H, W) int64 each, cheaper.

        Same decisions (up to float rounding at exact ties): the image and its flipped twin
        go through one forward; both probes are one matmul at feature resolution (the
        L2-normalised centroids stacked on the linear weights), upsampled once; the argmax
        skips the log-softmax (monotone) and the cluster probe's division by the upsampled
        feature norm (a positive per-pixel scale).  The CRF needs :meth:`predict`'s
        log-probabilities instead.
        """
        b = feats.shape[0]
        if feats_flipped is not None:
            x = self.forward(torch.cat([feats, feats_flipped])).probe_input
            x = (x[:b] + x[b:].flip(dims=[3])) / 2
        else:
            x = self.forward(feats).probe_input
        k = self.cluster_probe.n_classes
        conv = self.linear_probe.conv
        weight = torch.cat([F.normalize(self.cluster_probe.clusters, dim=1), conv.weight.flatten(1)])
        bias = torch.cat([conv.bias.new_zeros(k), conv.bias])
        scores = torch.einsum("bchw,nc->bnhw", x, weight) + bias[:, None, None]
        # channels-last: the upsampling and the argmax over classes then run over contiguous rows
        scores = scores.contiguous(memory_format=torch.channels_last)
        size = tuple(int(s) for s in size)
        if tuple(scores.shape[-2:]) != size:
            scores = F.interpolate(scores, size, mode="bilinear", align_corners=False)
        cluster = scores[:, :k].argmax(1)
        if scores.shape[1] == k:  # no classes (unlabelled folder): no linear prediction
            return {"cluster": cluster, "linear": torch.full_like(cluster, -1)}
        return {"cluster": cluster, "linear": scores[:, k:].argmax(1)}
