"""Numbers quoted from the paper (Kim et al., AAAI 2024), for side-by-side tables.

Every row produced from here is labelled ``source = "quoted (paper)"``; nothing here is
measured by equss.  Values: unsupervised Acc / mIoU, linear Acc / mIoU, in percent.
"""

QUOTED = "quoted (paper)"

TABLE1 = {  # CocoStuff-27, DINO ViT-S/8
    "DINO (raw features)": (30.5, 9.6, 66.8, 29.4),
    "STEGO": (48.3, 24.5, 74.4, 38.3),
    "EQUSS": (53.8, 25.8, 75.2, 41.2),
}
TABLE2A = {  # Cityscapes-27: unsupervised Acc / mIoU only
    "STEGO": (73.2, 21.0, None, None),
    "EQUSS": (79.9, 22.0, None, None),
}
TABLE2B = {  # Potsdam-3: unsupervised Acc only
    "STEGO": (77.0, None, None, None),
    "EQUSS": (82.0, None, None, None),
}
TABLE3 = {  # CocoStuff-27 ablation: (dim, PQ) -> numbers
    "M1 (70, no PQ)": (48.3, 24.5, 74.4, 38.3),
    "M2 (384, no PQ)": (48.6, 24.2, 67.9, 31.6),
    "M3 (1024, no PQ)": (48.1, 21.9, 64.6, 31.5),
    "Q2 (384, PQ)": (49.7, 25.1, 72.4, 36.7),
    "Q3 (1024, PQ)": (53.8, 25.8, 75.2, 41.2),
}
ENTROPY_BITS = {"EQUSS": 246, "STEGO": 475}  # average per-class entropy, Fig. 4a
FIG6 = {"d_E": 512, "M": [1, 2, 4, 8, 16, 32, 64], "best_M": [8, 16, 32], "best_K": [32, 64]}


def quoted_rows(table: dict, suffix: str = "") -> list[dict]:
    """Rows in the format of :func:`equss.paper.runs.row`, marked as quoted."""
    rows = []
    for name, vals in table.items():
        ua, um, la, lm = vals
        rows.append({"method": name + suffix, "source": QUOTED, "unsup_acc": ua, "unsup_miou": um,
                     "linear_acc": la, "linear_miou": lm})
    return rows
