"""Data behind the figures that need a trained model: test-split codes for Fig. 4 (entropy,
Eq. 6-7; codeword distances, Eq. 8-9) and mapped cluster predictions for Fig. 5, plus
label colouring."""
from __future__ import annotations

from pathlib import Path


def _load_run(result: dict, device: str = "cpu"):
    from equss.data.features import get_or_build_features
    from equss.pipeline.inputs import make_backbone, make_dataset
    from equss.pipeline.checkpoint import load_checkpoint, model_from_checkpoint

    from equss.paper.runs import evaluated_checkpoint

    state = load_checkpoint(evaluated_checkpoint(result))
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


def spread_indices(n_total: int, n: int) -> list[int]:
    """``n`` indices evenly spread over ``range(n_total)`` (first and last included): diverse test
    images rather than consecutive frames of one sequence."""
    import numpy as np

    n = max(1, min(n, n_total))
    return sorted({int(round(x)) for x in np.linspace(0, n_total - 1, n)})


def n_test_images(result: dict) -> int:
    """Number of images in a run's test split (from its evaluation provenance)."""
    return int(result["provenance"]["n_images"])


def predictions(result: dict, indices: list[int], device: str = "cpu", crf: bool = False) -> dict:
    """Cluster predictions mapped to classes (Hungarian assignment of the full test split),
    with images and ground truth, for Fig. 5; with ``crf`` also ``pred_crf``: the same after the
    dense CRF (STEGO's parameters; the assignment of the CRF evaluation when the result has one)."""
    import numpy as np
    import torch

    from equss.data import IMAGENET_MEAN, IMAGENET_STD

    model, cfg, dataset, cache = _load_run(result, device)
    assignment = np.asarray(result["cluster"]["assignment"])
    assignment_crf = np.asarray(result.get("cluster_crf", result["cluster"])["assignment"])
    out = {"image": [], "label": [], "pred": [], "pred_crf": []}
    mapped = lambda cl, a: np.where(cl < len(a), a[np.minimum(cl, len(a) - 1)], -1)  # noqa: E731
    mean, std = np.asarray(IMAGENET_MEAN)[:, None, None], np.asarray(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        for i in indices:
            img, label = dataset[i][:2]
            f = cache.batch([i])[0].to(device)
            logp = model.predict(f, tuple(label.shape[-2:]))["cluster"]
            out["pred"].append(mapped(logp.argmax(1)[0].cpu().numpy(), assignment))
            if crf:
                from equss.eval.crf import crf_batch

                refined = np.asarray(crf_batch([img], logp.cpu()))
                out["pred_crf"].append(mapped(refined.argmax(1)[0], assignment_crf))
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


def entropy_analysis(stego: dict, equss: dict, seed: int, dataset: str, records=None,
                     samples_per_class: int = 2000) -> dict:
    """Fig. 4 for one seed: per-class entropy (EQUSS: code entropy, Eq. 6-7; STEGO: summed
    256-bin histogram entropy of its continuous output), codeword frequency and the Eq. 9
    class distance matrix of EQUSS.  With ``records`` the numbers are also written as
    ``fig4.json`` into both runs' records, so the CSV rows trace to them.

    Returns ``{"entropy_rows", "distance_rows", "freq", "class_freq", "dist", "class_names"}`` (``freq``
    (M, K) codeword counts over all patches, ``class_freq`` (C, M, K) per class, for the classes of the rows
    in class order); the rows are
    long-form (method, dataset, seed, run, eval, class, class_index, entropy_bits, iou)."""
    import numpy as np

    from equss.eval import analysis
    from equss.io import write_json

    eq, st = collect_codes(equss), collect_codes(stego)
    names = eq["class_names"]
    K = eq["codebook_size"]
    ent = {"EQUSS": analysis.per_class_entropy(eq["codes"], eq["labels"], K),
           "STEGO": {int(c): analysis.histogram_entropy(st["features"][st["labels"] == c], bins=256)
                     for c in np.unique(st["labels"])}}
    dist = analysis.class_distance_matrix(eq["codes"], eq["labels"], len(names), samples_per_class=samples_per_class,
                                          seed=seed)
    freq = analysis.codeword_frequency(eq["codes"], K)
    classes = [c for c in range(len(names)) if c in ent["EQUSS"] and c in ent["STEGO"]]
    class_freq = np.stack([analysis.codeword_frequency(eq["codes"][eq["labels"] == c], K) for c in classes])
    results = {"EQUSS": equss, "STEGO": stego}
    docs = {"EQUSS": {"entropy_bits": {str(c): float(ent["EQUSS"][c]) for c in classes},
                      "distance": np.asarray(dist, dtype=float).tolist(), "class_names": names,
                      "n_patches": int(len(eq["labels"])), "samples_per_class": samples_per_class},
            "STEGO": {"entropy_bits": {str(c): float(ent["STEGO"][c]) for c in classes}, "histogram_bins": 256,
                      "class_names": names, "n_patches": int(len(st["labels"]))}}
    if records:
        for method, doc in docs.items():
            write_json(Path(records) / results[method]["run"] / "fig4.json", doc)
    entropy_rows = []
    for method in ("STEGO", "EQUSS"):
        iou = results[method]["cluster"]["per_class_iou"]
        for c in classes:
            entropy_rows.append({"method": method, "dataset": dataset, "seed": seed, "run": results[method]["run"],
                                 "eval": "fig4.json", "class": names[c], "class_index": c,
                                 "entropy_bits": docs[method]["entropy_bits"][str(c)],
                                 "iou": float("nan") if iou[c] is None else float(iou[c]), "source": "measured"})
    distance_rows = [{"dataset": dataset, "seed": seed, "run": equss["run"], "eval": "fig4.json", "class_a": names[a],
                      "class_a_index": a, "class_b": names[b], "class_b_index": b,
                      "distance": docs["EQUSS"]["distance"][a][b], "source": "measured"}
                     for a in range(len(names)) for b in range(len(names)) if np.isfinite(dist[a][b])]
    return {"entropy_rows": entropy_rows, "distance_rows": distance_rows, "freq": freq, "class_freq": class_freq,
            "dist": dist, "class_names": names}


def fig4_data(results_dir) -> dict:
    """What Fig. 4 draws, read back from a results folder (the same numbers the claims test):
    ``entropy`` (``fig4.csv``'s measured rows), ``per_class`` (per EQUSS class: mean entropy and
    per-class accuracy over the seeds, with their standard deviations; accuracy from each run's matched
    confusion matrix, :func:`equss.paper.claims.load_tables`), ``rho`` (Spearman's rho across those class
    means, the Fig. 4c claim's estimate), ``dist`` (Eq. 9 distance matrix, mean over seeds, from
    ``fig4_distance.csv``) and ``class_names``."""
    import numpy as np
    from scipy import stats

    from equss.paper import claims

    tables = claims.load_tables(results_dir)
    ent = tables["fig4"]
    ent = ent[ent["source"] == "measured"]
    eq = ent[ent["method"] == "EQUSS"]
    acc = tables.get("class_accuracy")
    if acc is not None:
        eq = eq.merge(acc, on=["run", "class_index"], how="left")
    else:  # records without confusion matrices: NaN accuracy (the panel stays empty)
        eq = eq.assign(accuracy=np.nan)
    per_class = (eq.groupby("class_index", sort=True)
                 .agg(**{"class": ("class", "first"), "entropy_bits": ("entropy_bits", "mean"),
                         "entropy_bits_sd": ("entropy_bits", "std"), "accuracy": ("accuracy", "mean"),
                         "accuracy_sd": ("accuracy", "std"), "n": ("seed", "nunique")})
                 .reset_index())
    ok = np.isfinite(per_class["accuracy"].to_numpy(float))
    rho = float(stats.spearmanr(per_class["entropy_bits"][ok], per_class["accuracy"][ok]).statistic) \
        if ok.sum() > 2 else float("nan")
    names = list(ent.drop_duplicates("class_index").sort_values("class_index")["class"])
    index = {c: k for k, c in enumerate(sorted(ent["class_index"].unique()))}
    dist = np.full((len(names), len(names)), np.nan)
    fd = tables.get("fig4_distance")
    if fd is not None:
        mean = fd[fd["source"] == "measured"].groupby(["class_a_index", "class_b_index"])["distance"].mean()
        for (a, b), v in mean.items():
            if a in index and b in index:
                dist[index[a], index[b]] = v
    return {"entropy": ent, "per_class": per_class, "rho": rho, "dist": dist, "class_names": names}


def image_scores(pred, label) -> dict:
    """Per-image scores of a mapped prediction against its ground truth (labelled pixels only):
    ``Acc`` (% of pixels right) and ``mIoU`` (%, mean IoU over the classes present in the ground truth or
    the prediction of this image)."""
    import numpy as np

    pred, label = np.asarray(pred).ravel(), np.asarray(label).ravel()
    keep = label >= 0
    p, t = pred[keep], label[keep]
    if not len(t):
        return {"Acc": float("nan"), "mIoU": float("nan")}
    classes = np.union1d(np.unique(t), np.unique(p[p >= 0]))
    ious = [np.sum((p == c) & (t == c)) / np.sum((p == c) | (t == c)) for c in classes]
    return {"Acc": 100.0 * float(np.mean(p == t)), "mIoU": 100.0 * float(np.mean(ious))}


FIG5_COLUMNS = (("STEGO", "pred"), ("STEGO + CRF", "pred_crf"), ("EQUSS", "pred"), ("EQUSS + CRF", "pred_crf"))


def fig5_panels(preds: dict, palette) -> tuple[list, list, list]:
    """Fig. 5's grid from :func:`predictions` of the STEGO and EQUSS runs: per image the image, the
    ground truth and the four predictions coloured with ``palette``; the titles; and per image the
    scores of each prediction (:func:`image_scores`: ``{title: {"Acc", "mIoU"}}``)."""
    ref = preds["EQUSS"]
    columns = [(t, key) for t, key in FIG5_COLUMNS if len(preds[t.split()[0]].get(key, [])) == len(ref["image"])]
    titles = ["image", "ground truth"] + [t for t, _ in columns]
    panels, scores = [], []
    for i in range(len(ref["image"])):
        label = ref["label"][i]
        cols = [(t, preds[t.split()[0]][key][i]) for t, key in columns]
        panels.append([ref["image"][i], colorize(label, palette)] + [colorize(p, palette) for _, p in cols])
        scores.append({t: image_scores(p, label) for t, p in cols})
    return panels, titles, scores


def score_text(scores: list[dict]) -> list[dict]:
    """:func:`fig5_panels`' scores as the text written in each panel: ``mIoU 41.2 · Acc 80.3``."""
    return [{t: f"mIoU {s['mIoU']:.1f} · Acc {s['Acc']:.1f}" for t, s in row.items()} for row in scores]
