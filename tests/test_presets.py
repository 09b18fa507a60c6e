"""The paper presets against the official configs, as facts written down from the sources.

EQUSS: github.com/pitlover/Expand-and-Quantize-for-Unsupervised-Semantic-Segmentation
  HEAD da82dea  config/cocostuff/pqgo_baseline.yaml (l.11-12 cocostuff15; l.34-47 K/d_E/M;
                l.70-75 STEGO weights/shifts "cocostuff27 with vit-small"; l.131 crop none;
                l.146 batch 16; l.182 max_epochs 3; l.184 valid_interval_iters 75),
                config/cityscapes/pqgo_baseline.yaml (ViT-B/8; K 32, d_E 1024, M 32; weights
                .95/.43/1.0, shifts .31/.22/.36 at l.94-99; crop five; 15 epochs; val every 75),
                train.py (l.394 GradScaler(init_scale=2048, growth_interval=1000); l.91-97 unscale
                the model optimiser, clip 10, scaler.step + update per optimiser; lrs 3e-4/3e-3/3e-3)
  6adb9cc       the same COCO file with 27 classes: M 64, normalize none, weights .63/.25/.67,
                shifts .66/.02/.08 (neg/pos_inter/pos_intra), crop five
  a2702b8       config/pqgo_baseline.yaml (Potsdam): ViT-B/8, d_E 256, K 8, M 16, weights
                .63/.25/.67, shifts .26/.12/.21, crop five, batch 32, 80 epochs, val every 100
STEGO: github.com/mhamilton723/STEGO eb4d6b5
  src/configs/train_config.yml: max_steps 5000 (l.10), batch 16, crop five, dim 70 (l.39),
  lr 5e-4 (l.43), val_freq 100 (l.167); per-dataset blocks: "Cocostuff27 vit small 1/31/22"
  (l.74-80) .63/.25/.67 ; .66/.02/.08, "Potsdam vit small 1/31/22" (l.66-72) .63/.25/.67 ;
  .46/.02/.08, "Cityscapes 10/3" (l.126-134) .9058762625226623/.577453483136995/1 ;
  .31361241889448443/.1754346515479633/.45828472207.
  src/train_segmentation.py: probes Adam 5e-3 (l.373-383), no precision argument (fp32), no
  gradient clipping; src/modules.py DinoFeaturizer: three dropout masks (l.109-116).
"""
import pytest

from equss.config import load_config
from equss.pipeline.train import training_steps

# (neg_inter, pos_inter, pos_intra) weights and shifts, in the official configs' order
FACTS = {
    "cocostuff27-equss": dict(backbone="dino_vits8", d=1024, pq=True, M=32, K=256, norm="l2",
                              w=(.53, .45, .47), s=(.23, .02, .18), five=False, batch=16, epochs=3,
                              val=75, lr=3e-4, probe_lr=3e-3, clip=10.0, amp=True, per_branch=False),
    "cocostuff27-equss-6adb9cc": dict(backbone="dino_vits8", d=1024, pq=True, M=64, K=256, norm="none",
                                      w=(.63, .25, .67), s=(.66, .02, .08), five=True, batch=16, epochs=3,
                                      val=75, lr=3e-4, probe_lr=3e-3, clip=10.0, amp=True, per_branch=False),
    "cityscapes27-equss": dict(backbone="dino_vitb8", d=1024, pq=True, M=32, K=32, norm="l2",
                               w=(.95, .43, 1.0), s=(.31, .22, .36), five=True, batch=16, epochs=15,
                               val=75, lr=3e-4, probe_lr=3e-3, clip=10.0, amp=True, per_branch=False),
    "potsdam3-equss": dict(backbone="dino_vitb8", d=256, pq=True, M=16, K=8, norm="l2",
                           w=(.63, .25, .67), s=(.26, .12, .21), five=True, batch=32, epochs=80,
                           val=100, lr=3e-4, probe_lr=3e-3, clip=10.0, amp=True, per_branch=False),
    "cocostuff27-stego": dict(backbone="dino_vits8", d=70, pq=False, w=(.63, .25, .67), s=(.66, .02, .08),
                              five=True, batch=16, steps=5000, val=100, lr=5e-4, probe_lr=5e-3, clip=0.0,
                              amp=False, per_branch=True),
    "cityscapes27-stego": dict(backbone="dino_vitb8", d=100, pq=False,
                               w=(.9058762625226623, .577453483136995, 1.0),
                               s=(.31361241889448443, .1754346515479633, .45828472207),
                               five=True, batch=16, steps=5000, val=100, lr=5e-4, probe_lr=5e-3, clip=0.0,
                               amp=False, per_branch=True),
    "potsdam3-stego": dict(backbone="dino_vitb8", d=70, pq=False, w=(.63, .25, .67), s=(.46, .02, .08),
                           five=True, batch=16, steps=5000, val=100, lr=5e-4, probe_lr=5e-3, clip=0.0,
                           amp=False, per_branch=True),
}


@pytest.mark.parametrize("preset", sorted(FACTS))
def test_paper_preset_is_the_official_recipe(preset):
    f = FACTS[preset]
    c = load_config(preset, "paper")
    m, lo, d, t = c.model, c.loss, c.data, c.train
    assert t.backbone == f["backbone"] and m.head_dim == f["d"] and m.pq == f["pq"]
    if f["pq"]:
        assert (m.num_codebooks, m.codebook_size, m.pq_normalize) == (f["M"], f["K"], f["norm"])
        assert (m.codebook_weight, m.commitment_weight) == (1.0, 0.25)
    assert (lo.neg_inter_weight, lo.pos_inter_weight, lo.pos_intra_weight) == pytest.approx(f["w"])
    assert (lo.neg_inter_shift, lo.pos_inter_shift, lo.pos_intra_shift) == pytest.approx(f["s"])
    assert (lo.feature_samples, lo.neg_samples, lo.zero_clamp, lo.pointwise, lo.stabilize) == (11, 5, True, True, False)
    assert d.five_crop == f["five"] and (d.resolution, d.eval_resolution, d.num_neighbors) == (224, 320, 7)
    assert t.batch_size == f["batch"] and t.val_every == f["val"]
    assert (t.lr, t.probe_lr, t.clip_grad, t.amp) == (f["lr"], f["probe_lr"], f["clip"], f["amp"])
    assert m.dropout == 0.1 and m.dropout_per_branch == f["per_branch"]
    assert m.probe_upsample == (not f["per_branch"])  # STEGO trains its cluster probe at feature size
    if "epochs" in f:
        assert t.epochs == f["epochs"]
    else:
        assert (t.epochs, t.steps) == (0, f["steps"])
    assert c.eval.flip is False  # one protocol for all rows: the official EQUSS evaluator


def test_table3_rows_share_one_recipe():
    base = load_config("cocostuff27-equss", "paper").to_dict()
    for row, (dim, pq) in {"M1": (70, False), "M2": (384, False), "M3": (1024, False),
                           "Q2": (384, True), "Q3": (1024, True)}.items():
        c = load_config(f"cocostuff27-{row}", "paper")
        assert (c.model.head_dim, c.model.pq) == (dim, pq)
        d = c.to_dict()
        for sec in ("loss", "data", "train", "eval"):
            assert d[sec] == base[sec], (row, sec)
        assert {k: v for k, v in d["model"].items() if k not in ("head_dim", "pq")} == \
               {k: v for k, v in base["model"].items() if k not in ("head_dim", "pq")}
    assert load_config("cocostuff27-Q3", "paper").key() == load_config("cocostuff27-equss", "paper").key()


def test_epochs_become_steps_and_smoke_scale_wins():
    c = load_config("cityscapes27-equss", "paper")
    # Cityscapes train 2975 images, five crops each: 14875 crops, 930 batches of 16, 15 epochs
    assert training_steps(c, 5 * 2975) == 15 * 930
    assert training_steps(load_config("potsdam3-equss", "paper"), 100) == 80 * 4
    s = load_config("cocostuff27-stego", "smoke")  # the smoke section beats every preset in the chain
    assert (s.train.steps, s.train.epochs, s.train.batch_size) == (4, 0, 4)
    assert training_steps(s, 8) == 4
