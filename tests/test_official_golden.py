"""Golden values from the OFFICIAL EQUSS code guard the faithful fp32 training core.

``tests/fixtures/official_golden.json`` holds the losses and parameter checksums of 3 fp32
CPU training steps of the official code (pitlover/Expand-and-Quantize-for-Unsupervised-
Semantic-Segmentation @da82dea: PQGOWrapper + DIONPQGO + STEGOLoss + UnSegEvaluator, train.py's
three Adam optimisers and gradient clipping) on fixed synthetic backbone features, with the
cocostuff27 ViT-S/8 configuration (d_E 1024, M 32, K 256).  Its ``provenance`` block says how
they were recorded and how the random draws line up.

This test rebuilds the same run with equss: the ``cocostuff27-equss`` preset, every parameter
set by name from the seeded recipe of the fixture (so equss's own init order does not matter),
the same inputs, ``torch.manual_seed(step_seed + s)`` before step ``s``, and the Trainer's own
``train_step`` (its optimiser setup is mirrored here because the real Trainer needs datasets).
Each loss and each [sum, sum of squares] of every parameter after each step must match to
``|ours - golden| <= abs + rel * |golden|`` (1e-6 + 1e-5 relative; side by side the two codes
agree to about 1e-7).

A failure means the training step no longer computes what the official code computes
(a preset value, a loss, the quantiser, the probes, the optimisers, the clipping, or the
order of random draws changed), or that torch changed its CPU random streams (then the
``initial``/``inputs`` checks fail first and the golden values must be re-recorded).
"""
from __future__ import annotations

import json
import math
import types
from pathlib import Path

import torch

from equss.config import load_config
from equss.model import EQUSS

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "official_golden.json").read_text())
RECIPE = GOLDEN["recipe"]
TOL = GOLDEN["tolerance"]
# official-only values (not produced by equss as such): "vq" is 1.0 * codebook + 0.25 * commitment
SKIP_LOSSES = {"vq"}


def _close(ours: float, gold: float) -> bool:
    return abs(ours - gold) <= TOL["abs"] + TOL["rel"] * abs(gold)


def _checksums(tensors: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {n: [float(t.detach().double().sum()), float(t.detach().double().pow(2).sum())]
            for n, t in tensors.items()}


def _compare(where: str, ours: dict[str, list[float]], gold: dict[str, list[float]], bad: list[str]) -> None:
    assert set(ours) == set(gold), f"{where}: names differ: {sorted(set(ours) ^ set(gold))}"
    for name, values in gold.items():
        for what, o, g in zip(("sum", "sum of squares"), ours[name], values):
            if not _close(o, g):
                bad.append(f"{where} {name} {what}: ours {o:.9g} golden {g:.9g} (diff {o - g:.3g})")


def _initial_params() -> dict[str, torch.Tensor]:
    """The fixture's documented recipe: parameter i from Generator(param_seed + i)."""
    out = {}
    for i, p in enumerate(RECIPE["params"]):
        g = torch.Generator().manual_seed(RECIPE["param_seed"] + i)
        if p["init"] == "uniform":
            out[p["name"]] = torch.empty(p["shape"]).uniform_(-p["scale"], p["scale"], generator=g)
        else:
            out[p["name"]] = torch.randn(p["shape"], generator=g) * p["scale"]
    return out


def _step_inputs(step: int):
    g = torch.Generator().manual_seed(RECIPE["input_seed"] + step)
    b, c = RECIPE["batch"], RECIPE["in_dim"]
    (h, w), (lh, lw) = RECIPE["feat_hw"], RECIPE["label_hw"]
    feats = torch.randn((b, c, h, w), generator=g)
    feats_pos = torch.randn((b, c, h, w), generator=g)
    labels = torch.randint(0, RECIPE["n_classes"], (b, lh, lw), generator=g)
    labels[torch.rand((b, lh, lw), generator=g) < 0.1] = -1
    return feats, feats_pos, labels


def _config():
    return load_config("cocostuff27-equss", scale="smoke")


def test_preset_matches_official_config():
    """The preset's model/loss/optimiser values are the official ones the golden run used."""
    cfg, off = _config(), GOLDEN["official_config"]
    m, lc, tc, st = cfg.model, cfg.loss, cfg.train, off["stego"]
    pairs = {
        "model.head_dim": (m.head_dim, off["embed_dims"]),
        "model.num_codebooks (M)": (m.num_codebooks, off["num_pq"]),
        "model.codebook_size (K)": (m.codebook_size, off["num_codebooks"]),
        "model.codebook_weight": (m.codebook_weight, off["book"]),
        "model.commitment_weight": (m.commitment_weight, off["beta"]),
        "model.dropout": (m.dropout, off["drop_prob"]),
        "model.extra_clusters": (m.extra_clusters, off["extra_classes"]),
        "loss.stego_weight": (lc.stego_weight, off["stego_weight"]),
        "loss.vq_weight": (lc.vq_weight, off["vq_weight"]),
        "train.lr": (tc.lr, off["lr_model"]),
        "train.probe_lr (cluster)": (tc.probe_lr, off["lr_cluster"]),
        "train.probe_lr (linear)": (tc.probe_lr, off["lr_linear"]),
        "train.clip_grad": (tc.clip_grad, off["clip_grad"]),
    }
    for key in ("pos_intra_weight", "pos_inter_weight", "neg_inter_weight", "pos_intra_shift",
                "pos_inter_shift", "neg_inter_shift", "feature_samples", "neg_samples", "pointwise",
                "zero_clamp", "stabilize"):
        pairs[f"loss.{key}"] = (getattr(lc, key), st[key])
    # official choices without a number: raw-codeword PQ output (vq_type param, l2), probes on
    # the quantised output upsampled to the label size, STEGO loss on the dropped-out features
    pairs["model.pq"] = (m.pq, True)
    pairs["model.pq_variant"] = (m.pq_variant, "official")
    pairs["model.probe_upsample"] = (m.probe_upsample, True)
    pairs["model.loss_on_dropped_features"] = (m.loss_on_dropped_features, True)
    pairs["model.objective"] = (m.objective, "unsupervised")
    wrong = {k: v for k, v in pairs.items() if v[0] != v[1]}
    assert not wrong, f"cocostuff27-equss differs from the official config (ours, official): {wrong}"


def test_three_steps_match_official_code():
    from equss.pipeline.train import Trainer

    cfg = _config()
    model = EQUSS(cfg, in_dim=RECIPE["in_dim"], n_classes=RECIPE["n_classes"])
    init = _initial_params()
    params = dict(model.named_parameters())
    assert set(params) == set(init), (
        "equss parameter names changed; update the recipe names in tests/fixtures/official_golden.json "
        f"(recipe.params and recipe.name_map): {sorted(set(params) ^ set(init))}")
    with torch.no_grad():
        for name, value in init.items():
            assert params[name].shape == value.shape, (name, tuple(params[name].shape), tuple(value.shape))
            params[name].copy_(value)

    bad: list[str] = []
    _compare("initial", _checksums(params), GOLDEN["initial"], bad)
    for s, gold_in in enumerate(GOLDEN["inputs"]):
        feats, feats_pos, labels = _step_inputs(s)
        got = _checksums({"feats": feats, "feats_pos": feats_pos, "labels": labels})
        _compare(f"inputs step {s}", got, {k: gold_in[k] for k in got}, bad)
        if int((labels < 0).sum()) != gold_in["ignored"]:
            bad.append(f"inputs step {s}: {int((labels < 0).sum())} ignored pixels, golden {gold_in['ignored']}")
    assert not bad, ("the seeded recipe no longer reproduces the recorded initial values/inputs "
                     "(torch CPU random streams changed?); re-record the golden values:\n" + "\n".join(bad))

    # The Trainer's optimiser setup (Trainer.__init__) and its own train_step on a stand-in
    # `self`: the real Trainer also builds datasets, caches and a backbone.
    tc = cfg.train
    optimizers = {
        "model": torch.optim.Adam(model.model_parameters(), lr=tc.lr),
        "cluster": torch.optim.Adam(model.cluster_probe.parameters(), lr=tc.probe_lr),
        "linear": torch.optim.Adam(model.linear_probe.parameters(), lr=tc.probe_lr),
    }
    n_model = sum(p.numel() for p in model.model_parameters())
    assert n_model == sum(params[n].numel() for n in params if n.startswith(("head.", "quantizer."))), \
        "model_parameters() must be exactly the head and the codebooks (the official clipped/3e-4 group)"

    class _Source:
        batch = None

        def next(self, batch_size):  # the recipe's batch, whatever train.batch_size says
            feats, feats_pos, labels = self.batch
            return types.SimpleNamespace(feats=feats, feats_pos=feats_pos, labels=labels)

    trainer = types.SimpleNamespace(
        cfg=cfg, world=1, rank=0, source=_Source(), model=model, optimizers=optimizers, step=0,
        loss_fn=lambda f, fp, lab: model.training_losses(f, fp, lab),
        device=torch.device("cpu"), use_amp=False, amp_dtype=None, scaler=torch.amp.GradScaler("cuda", enabled=False))

    with torch.random.fork_rng(devices=[]):  # leave the global RNG as it was for other tests
        for s, gold in enumerate(GOLDEN["steps"]):
            trainer.source.batch = _step_inputs(s)
            torch.manual_seed(RECIPE["step_seed"] + s)
            out = Trainer.train_step(trainer)
            for key, g in gold["losses"].items():
                if key in SKIP_LOSSES:
                    continue
                assert key in out, f"train_step no longer reports {key!r}"
                if not (math.isfinite(out[key]) and _close(out[key], g)):
                    bad.append(f"step {s} loss {key}: ours {out[key]:.9g} golden {g:.9g} (diff {out[key] - g:.3g})")
            _compare(f"step {s} params", _checksums(params), gold["params"], bad)
    assert not bad, (f"{len(bad)} values differ from the official code's golden run "
                     f"(tolerance {TOL['abs']} + {TOL['rel']} * |golden|):\n" + "\n".join(bad))
