"""A shipped model and its frozen backbone, ready for images: what ``torch.hub.load(REPO,
"equss_camvid", source="local")`` (``hubconf.py``) and the demo notebook use.

The model comes from :func:`equss.pipeline.shipped.load_model` (every file checked against its
card); the backbone is built from the card's config and must load the weights the card names.
Segmentation is :func:`equss.pipeline.segment.segment_image`, the path of ``equss segment``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from equss.errors import EqussError
from equss.pipeline.shipped import check_backbone, load_model


class Segmenter(torch.nn.Module):
    """A shipped model with its backbone, ready for images (``torch.hub.load(..., "equss_camvid")``).

    * ``segment(image, crf=False)``: class ids ``(H, W)`` at the image's size (cluster probe
      mapped to classes by the model's assignment; -1 where a cluster has no class), or with
      ``probe="linear"`` the linear probe's classes; ``clusters(image)``: raw cluster ids;
    * ``codes(image)``: the product quantiser's indices ``(M, h, w)`` on the feature grid of the
      image resized as for segmentation (EQUSS models only), with that resized image;
    * ``forward(images)``: class ids ``(B, H, W)`` of a batch of ImageNet-normalised images.

    ``image`` is a PIL image, a path, or an ``(H, W, 3)`` uint8 array.
    """

    def __init__(self, model, backbone, cfg, info: dict):
        super().__init__()
        self.model, self.backbone, self.cfg, self.info = model, backbone, cfg, info
        self.card = info.get("card") or {}
        self.name = self.card.get("name", "model")
        self.class_names = list(info["class_names"])
        self.n_classes = int(info["n_classes"])
        self.assignment = info.get("assignment")
        self.resolution = int(cfg.data.eval_resolution)
        from equss.data import dataset_info

        pal = np.asarray(dataset_info(cfg.data.dataset).palette, dtype=np.uint8)
        self.palette = pal[: max(self.n_classes, 1)] if len(pal) >= self.n_classes else pal

    @classmethod
    def load(cls, model: str | os.PathLike = "camvid-equss", device: str = "auto") -> "Segmenter":
        from equss.device import resolve_device
        from equss.pipeline.inputs import make_backbone

        dev = resolve_device(device)
        net, cfg, info = load_model(model, device=dev)
        backbone = make_backbone(cfg, device=dev)
        check_backbone(backbone, info, f"model {info['card']['name']!r}")
        return cls(net, backbone, cfg, info)

    @staticmethod
    def to_rgb(image):
        """A PIL image, a path or an (H, W, 3) uint8 array as an 8-bit RGB PIL image (EXIF orientation applied)."""
        from PIL import Image

        from equss.pipeline.segment import load_image, load_rgb_from_pil

        if isinstance(image, (str, os.PathLike)):
            return load_image(image)
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise EqussError(f"an image array must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
            return Image.fromarray(image, mode="RGB")
        if isinstance(image, Image.Image):
            return load_rgb_from_pil(image)
        raise EqussError(f"cannot segment a {type(image).__name__}; pass a PIL image, a path or an (H, W, 3) uint8 array")

    def logprobs(self, image, probe: str = "cluster", flip: bool = True, resolution: int | None = None) -> torch.Tensor:
        """The probe's log-probabilities ``(n, H, W)`` at the image's size (clusters for ``cluster``)."""
        from equss.pipeline.segment import segment_logprobs

        if probe == "linear" and self.n_classes == 0:
            raise EqussError(f"model {self.name!r} has no classes (trained without labels); use probe='cluster'")
        return segment_logprobs(self.model, self.backbone, self.to_rgb(image), self.cfg, probe=probe,
                                resolution=resolution or self.resolution, flip=flip)

    def decide(self, logprobs: torch.Tensor, image=None, crf: bool = False, probe: str = "cluster") -> np.ndarray:
        """Class ids ``(H, W)`` from :meth:`logprobs` (refined by the dense CRF on ``image`` when ``crf``);
        cluster ids go through the model's assignment (-1: a cluster without a class)."""
        lp = logprobs
        if crf:
            from equss.eval.crf import dense_crf

            lp = dense_crf(np.asarray(self.to_rgb(image), dtype=np.uint8), lp, inputs="logits")
        pred = lp.argmax(0).numpy().astype(np.int64)
        if probe == "cluster" and self.assignment is not None:
            pred = np.asarray(self.assignment, dtype=np.int64)[pred]
        return pred

    def segment(self, image, crf: bool = False, probe: str = "cluster", flip: bool = True,
                resolution: int | None = None) -> np.ndarray:
        """Class ids ``(H, W)`` (the path of ``equss segment``: same numbers)."""
        img = self.to_rgb(image)
        return self.decide(self.logprobs(img, probe, flip, resolution), img, crf=crf, probe=probe)

    def clusters(self, image, crf: bool = False, flip: bool = True, resolution: int | None = None) -> np.ndarray:
        """Raw cluster ids ``(H, W)`` of the cluster probe (no class mapping)."""
        from equss.pipeline.segment import segment_image

        return segment_image(self.model, self.backbone, self.to_rgb(image), self.cfg, probe="cluster",
                             resolution=resolution or self.resolution, crf=crf, assignment=None, flip=flip)

    @torch.no_grad()
    def codes(self, image, resolution: int | None = None):
        """``(codes (M, h, w) int64 numpy, resized PIL image)``: the PQ indices of every feature cell
        of the image resized as :meth:`segment` does (shorter side ``resolution``)."""
        import math

        from PIL import Image

        from equss.data.base import preprocess_image
        from equss.pipeline.segment import _pad_to

        if self.model.quantizer is None:
            raise EqussError(f"model {self.name!r} has no product quantiser (no codewords); use an EQUSS model")
        img = self.to_rgb(image)
        x = preprocess_image(img, resolution or self.resolution, crop="none")[None]
        H, W = x.shape[-2:]
        p = self.backbone.patch_size
        x = _pad_to(x, math.ceil(H / p) * p, math.ceil(W / p) * p).to(self.backbone.device)
        feats = self.backbone(x).float()
        codes = self.model.forward(feats).codes[0]
        h, w = math.ceil(H / p), math.ceil(W / p)
        resized = img.resize((W, H), Image.NEAREST)
        return codes[:, :h, :w].cpu().numpy().astype(np.int64), resized

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from equss.pipeline.segment import predict_batch

        lp = predict_batch(self.model, self.backbone, images, probe="cluster", flip=True)
        pred = lp.argmax(1)
        if self.assignment is not None:
            pred = torch.as_tensor(self.assignment, dtype=torch.int64)[pred]
        return pred

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 colours of class ids (the dataset palette; black outside the classes)."""
        lab = np.asarray(labels)
        out = np.zeros(lab.shape + (3,), dtype=np.uint8)
        ok = (lab >= 0) & (lab < len(self.palette))
        out[ok] = self.palette[lab[ok]]
        return out
