"""ImageNet normalisation (the statistics DINO / DINOv2 were trained with): read by the backbones and by
the data pipeline, so it lives above both (neither imports the other for it)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
