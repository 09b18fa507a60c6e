import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix

from equss.eval.metrics import UnsupervisedMetrics


def _structured(n_classes, n_clusters, size, rng, noise=0.3):
    """Targets and predictions from a random class->cluster permutation plus noise."""
    target = rng.integers(0, n_classes, size)
    perm = rng.permutation(n_clusters)[:n_classes]
    pred = perm[target]
    flip = rng.random(size) < noise
    pred[flip] = rng.integers(0, n_clusters, flip.sum())
    return target, pred


def _iou_from_matched(cm):
    """cm[pred_class, true_class] after matching -> IoU per class (NaN where empty)."""
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (cm.sum(0) + cm.sum(1) - tp)


def test_hungarian_no_extra_matches_sklearn():
    rng = np.random.default_rng(0)
    n = 6
    target, pred = _structured(n, n, 5000, rng)
    target[:300] = -1  # ignored
    target[300:400] = 255  # ignored (>= n_classes)
    m = UnsupervisedMetrics(n)
    m.update(torch.from_numpy(pred[:2000]), torch.from_numpy(target[:2000]))
    m.update(pred[2000:].reshape(30, 100), target[2000:].reshape(30, 100))
    out = m.compute()

    keep = (target >= 0) & (target < n)
    cm = confusion_matrix(target[keep], pred[keep], labels=range(n))  # [true, pred]
    rows, cols = linear_sum_assignment(cm, maximize=True)  # true class -> cluster
    mapping = dict(zip(cols, rows))  # cluster -> class
    mapped = np.array([mapping[p] for p in pred[keep]])
    matched = confusion_matrix(target[keep], mapped, labels=range(n)).T  # [pred class, true]
    iou = _iou_from_matched(matched)
    assert out["mIoU"] == pytest.approx(100 * np.nanmean(iou), abs=1e-9)
    assert out["Accuracy"] == pytest.approx(100 * (mapped == target[keep]).mean(), abs=1e-9)
    assert out["confusion"] == matched.tolist()
    assert out["assignment"] == [mapping[c] for c in range(n)]
    np.testing.assert_allclose(out["per_class_iou"], 100 * iou)
    np.testing.assert_array_equal(m.map_clusters(pred[keep]), mapped)


def test_absent_class_dropped_from_mean():
    rng = np.random.default_rng(1)
    n = 5
    target, pred = _structured(n, n, 3000, rng, noise=0.0)
    absent = 3
    pred = pred[target != absent]  # class 3 never occurs, its cluster never predicted
    target = target[target != absent]
    m = UnsupervisedMetrics(n)
    m.update(pred, target)
    out = m.compute()
    assert math.isnan(out["per_class_iou"][absent])
    assert out["mIoU"] == pytest.approx(100.0) and out["Accuracy"] == pytest.approx(100.0)


@pytest.mark.parametrize("stego_mask", [True, False])
def test_extra_clusters(stego_mask):
    rng = np.random.default_rng(2)
    n, e = 5, 3
    target, pred = _structured(n, n + e, 6000, rng, noise=0.4)
    target[:100] = -1
    m = UnsupervisedMetrics(n, extra_clusters=e, stego_mask=stego_mask)
    m.update(pred, target)
    out = m.compute()

    upper = n if stego_mask else n + e
    keep = (target >= 0) & (target < n) & (pred < upper)
    cm = confusion_matrix(pred[keep], target[keep], labels=range(n + e))[:, :n]  # [cluster, class]
    assert m.stats.tolist() == cm.tolist()
    _, cluster_of_class = linear_sum_assignment(cm.T, maximize=True)
    matched = cm[cluster_of_class]  # row i: cluster matched to class i
    rest = np.setdiff1d(np.arange(n + e), cluster_of_class)
    hist = np.zeros((n + 1, n + 1), dtype=np.int64)
    hist[:n, :n] = matched
    hist[n, :n] = cm[rest].sum(0)
    iou = _iou_from_matched(hist)
    if stego_mask:
        assert math.isnan(iou[n])  # the extra pixels were dropped by the STEGO mask
    else:
        assert iou[n] == 0.0  # and counted as a class of IoU 0 otherwise (STEGO)
    assert out["mIoU"] == pytest.approx(100 * np.nanmean(iou))
    assert out["Accuracy"] == pytest.approx(100 * np.trace(hist) / hist.sum())
    assert out["confusion"] == matched.tolist()
    expected_assignment = [-1] * (n + e)
    for cls, clu in enumerate(cluster_of_class):
        expected_assignment[clu] = cls
    assert out["assignment"] == expected_assignment


def test_linear_identity_and_merge_reset():
    rng = np.random.default_rng(3)
    n = 4
    target = rng.integers(-1, n, 2000)
    pred = rng.integers(0, n, 2000)
    a, b, whole = (UnsupervisedMetrics(n, compute_hungarian=False) for _ in range(3))
    a.update(pred[:700], target[:700])
    b.update(pred[700:], target[700:])
    whole.update(pred, target)
    out = a.merge(b).compute()
    keep = target >= 0
    cm = confusion_matrix(target[keep], pred[keep], labels=range(n)).T
    iou = _iou_from_matched(cm)
    assert out == whole.compute()
    assert out["mIoU"] == pytest.approx(100 * np.nanmean(iou))
    assert out["Accuracy"] == pytest.approx(100 * (pred[keep] == target[keep]).mean())
    assert out["assignment"] == list(range(n))
    a.reset()
    assert a.stats.sum() == 0
    with pytest.raises(ValueError):
        UnsupervisedMetrics(3, extra_clusters=1, compute_hungarian=False)
