"""Dense CRF: torch backend always; against pydensecrf2 on a real CamVid image when available."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from equss.eval import crf
from equss.eval.crf import _BilateralGrid, _gaussian_filter, crf_batch, dense_crf, have_pydensecrf, to_uint8_image

needs_pydensecrf = pytest.mark.skipif(not have_pydensecrf(), reason="pydensecrf (pydensecrf2) not installed")


def _noisy_logits(labels, n_classes, seed, factor=8, noise=1.0):
    """Coarse (1/factor resolution) ground-truth logits plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    onehot = F.one_hot(torch.as_tensor(labels).clamp(0, n_classes - 1), n_classes).permute(2, 0, 1).float()
    coarse = F.interpolate(2.0 * onehot[None], scale_factor=1 / factor, mode="area")[0]
    return coarse + noise * torch.randn(coarse.shape, generator=g)


def _upsampled_argmax(logits, size):
    return F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0).numpy()


def test_gaussian_filter_is_exact():
    h, w = 7, 9
    q = torch.rand(2, h, w)
    ys, xs = np.mgrid[:h, :w]
    p = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    k = np.exp(-0.5 * ((p[:, None] - p[None]) ** 2).sum(-1))
    norm = 1 / np.sqrt(k.sum(1))
    ref = (norm[:, None] * (k @ (norm[:, None] * q.reshape(2, -1).numpy().T))).T.reshape(2, h, w)
    np.testing.assert_allclose(_gaussian_filter(h, w, 1.0)(q).numpy(), ref, rtol=1e-4, atol=1e-6)


def test_bilateral_grid_approximates_gaussian():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 5)) * np.array([2, 2, 3, 3, 3])
    v = rng.random((400, 2))
    k = np.exp(-0.5 * ((f[:, None] - f[None]) ** 2).sum(-1))
    exact = (k @ v) / k.sum(1, keepdims=True)
    grid = _BilateralGrid(torch.from_numpy(f).float(), 1.0)
    approx = (grid(torch.from_numpy(v).float()) / grid(torch.ones(400, 1))).numpy()
    # normalised filter outputs agree closely (the grid kernel is a smoothed Gaussian)
    assert np.corrcoef(approx.ravel(), exact.ravel())[0, 1] > 0.9
    assert np.abs(approx - exact).mean() < 0.05


def _synthetic():
    """Two-region image with a weak colour edge and noisy scores."""
    h, w = 48, 64
    labels = np.zeros((h, w), np.int64)
    labels[:, 30:] = 1
    labels[10:25, 5:20] = 2
    palette = np.array([[40, 90, 160], [60, 160, 60], [200, 60, 50]], np.uint8)
    rng = np.random.default_rng(0)
    image = np.clip(palette[labels] + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)
    return image, labels, _noisy_logits(labels, 3, seed=0, factor=4, noise=1.2)


def test_torch_crf_improves_noisy_scores():
    image, labels, logits = _synthetic()
    q = dense_crf(image, logits, backend="torch")
    assert q.shape == (3, *labels.shape)
    assert torch.allclose(q.sum(0), torch.ones(labels.shape), atol=1e-5)
    before = (_upsampled_argmax(logits, labels.shape) == labels).mean()
    after = (q.argmax(0).numpy() == labels).mean()
    assert after > before and after > 0.97


def test_normalised_tensor_input_and_probs_mode():
    image, labels, logits = _synthetic()
    mean = torch.tensor(crf.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(crf.IMAGENET_STD).view(3, 1, 1)
    norm = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - mean) / std
    back = to_uint8_image(norm)
    assert np.abs(back.astype(int) - image).max() <= 1  # to_pil_image truncation
    q1 = dense_crf(norm, torch.log_softmax(logits, 0), backend="torch")
    up = F.interpolate(logits[None], size=labels.shape, mode="bilinear", align_corners=False)[0]
    q2 = dense_crf(norm, torch.softmax(up, 0), backend="torch", inputs="probs")
    assert torch.allclose(q1, q2, atol=1e-5)


@pytest.mark.slow
def test_crf_batch_matches_serial():
    image, labels, logits = _synthetic()
    images = [image, image[:, ::-1].copy()]
    scores = torch.stack([logits, logits.flip(-1)])
    serial = torch.stack([dense_crf(im, s, backend="torch") for im, s in zip(images, scores)])
    assert torch.allclose(crf_batch(images, scores, workers=1, backend="torch"), serial)
    assert torch.allclose(crf_batch(images, scores, workers=2, backend="torch"), serial, atol=1e-6)


@pytest.mark.data
@needs_pydensecrf
def test_torch_matches_pydensecrf_on_camvid(data_root):
    from PIL import Image

    name = sorted((data_root / "CamVid" / "test").glob("*.jpg"))[0]
    image = np.array(Image.open(name).convert("RGB").resize((160, 120), Image.BILINEAR))
    labels = np.array(Image.open(data_root / "CamVid" / "testannot" / (name.stem + ".png"))
                      .resize((160, 120), Image.NEAREST)).astype(np.int64)
    valid = labels < 11  # CamVid: 11 = void
    logits = _noisy_logits(labels, 12, seed=0)
    ref = dense_crf(image, logits, backend="pydensecrf")
    ours = dense_crf(image, logits, backend="torch")
    agree = (ref.argmax(0) == ours.argmax(0)).float().mean().item()
    noisy = (_upsampled_argmax(logits, labels.shape) == labels)[valid].mean()
    acc_ref = (ref.argmax(0).numpy() == labels)[valid].mean()
    acc_ours = (ours.argmax(0).numpy() == labels)[valid].mean()
    print(f"torch vs pydensecrf pixel agreement {100 * agree:.2f} %; accuracy noisy {100 * noisy:.1f} "
          f"-> pydensecrf {100 * acc_ref:.1f} / torch {100 * acc_ours:.1f}")
    assert agree >= 0.95
    assert acc_ref > noisy + 0.03 and acc_ours > noisy + 0.03
