"""Data behind the figures that need a trained model: test-split codes for Fig. 4 (entropy,
Eq. 6-7; codeword distances, Eq. 8-9) and mapped cluster predictions for Fig. 5, plus
label colouring."""
from __future__ import annotations

from pathlib import Path


def _load_run(result: dict, device: str = "cpu"):
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import make_backbone, make_dataset
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(Path(result["run_dir"]) / "best.pt")
    model, cfg = model_from_checkpoint(state, device=device)
    dataset = make_dataset(cfg, cfg.data.test_split)
    cache = get_or_build_features(make_backbone(cfg, device=device), dataset, device=device, progress=False)
    return model, cfg, dataset, cache


def collect_codes(result: dict, max_images: int | None = None, device: str = "cpu") -> dict:
    """Codes of the test split's patches for Fig. 4: PQ codes (N, M) when the run has PQ,
    else the continuous head output (N, d) for the histogram entropy, and labels (N,)."""
    import numpy as np
    import torch

    from equss.pipeline.inputs import resize_labels

    model, cfg, dataset, cache = _load_run(result, device)
    n = len(cache) if not max_images else min(max_images, len(cache))
    codes, feats, labels = [], [], []
    with torch.no_grad():
        for i in range(n):
            f, lab = cache.batch([i])
            f = f.to(device)
            out = model(f)
            lab = resize_labels(lab, f.shape[-2:]).flatten()  # labels on the patch grid
            keep = lab >= 0
            labels.append(lab[keep].numpy())
            if out.codes is not None:
                codes.append(out.codes[0].flatten(1).T[keep].cpu().numpy())
            else:
                feats.append(out.code[0].flatten(1).T[keep].cpu().numpy())
    res = {"labels": np.concatenate(labels), "class_names": list(dataset.class_names), "n_images": n,
           "codebook_size": cfg.model.codebook_size if cfg.model.pq else None}
    if codes:
        res["codes"] = np.concatenate(codes)
    else:
        res["features"] = np.concatenate(feats)
    return res


def predictions(result: dict, indices: list[int], device: str = "cpu") -> dict:
    """Cluster predictions mapped to classes (Hungarian assignment of the full test split),
    with images and ground truth, for Fig. 5."""
    import numpy as np
    import torch

    from equss.data import IMAGENET_MEAN, IMAGENET_STD

    model, cfg, dataset, cache = _load_run(result, device)
    assignment = np.asarray(result["cluster"]["assignment"])
    out = {"image": [], "label": [], "pred": []}
    mean, std = np.asarray(IMAGENET_MEAN)[:, None, None], np.asarray(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        for i in indices:
            img, label = dataset[i][:2]
            f = cache.batch([i])[0].to(device)
            logp = model.predict(f, tuple(label.shape[-2:]))["cluster"]
            cl = logp.argmax(1)[0].cpu().numpy()
            out["pred"].append(np.where(cl < len(assignment), assignment[np.minimum(cl, len(assignment) - 1)], -1))
            out["label"].append(np.asarray(label))
            out["image"].append(np.clip(img.numpy() * std + mean, 0, 1).transpose(1, 2, 0))
    return out


def colorize(labels, palette):
    import numpy as np

    pal = np.asarray(palette, dtype=np.uint8)
    lab = np.asarray(labels)
    rgb = np.zeros(lab.shape + (3,), dtype=np.uint8)
    valid = (lab >= 0) & (lab < len(pal))
    rgb[valid] = pal[lab[valid]]
    return rgb
