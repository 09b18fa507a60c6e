"""Paper-scale dry run: every paper preset end to end at ``--scale paper`` on synthetic copies
of CocoStuff-27, Cityscapes-27 and Potsdam-3 in their exact on-disk layouts
(``tests/paper_data.py``), with random backbone weights in the formats equss loads, and a
tiny step count.  It catches path, layout, preset and memory-shape bugs before a GPU run.

* ViT-S/8 (``dino_vits8``): a DINO-release-format ``dino_deitsmall8_300ep_pretrain.pth``
  (random weights) in ``$EQUSS_CACHE/weights/``, where the backbone looks for it;
* ViT-B/8 (``dino_vitb8``): a plain state-dict file passed with ``--set train.weights=PATH``
  (offline, the timm hub tag cannot be fetched); saved in float16 to halve the file (the
  loader converts to float32).

Only the step count and the image size are overridden (``TINY``): everything else is the
preset's recipe, checked against the saved ``config.yaml``.  Through the CLI
(``equss.cli.main``): ``train`` (feature cache + kNN built), ``eval``, ``eval --crf``.

The notebooks run the same way (papermill, ``scale="paper"``, tiny steps through their
``overrides`` parameter, one seed, small grids for Figs 2 and 6); a notebook without the
``overrides`` parameter is skipped with the reason.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import paper_data
from equss import cli
from equss.config import load_config

pytestmark = pytest.mark.slow

TINY = ["train.epochs=0", "train.steps=2", "train.val_every=1", "train.batch_size=2",
        "data.resolution=64", "data.eval_resolution=64"]
# preset -> (dataset, backbone); every paper preset (paper.yaml) and Table 3 (ablation.yaml)
PRESETS = {
    "cocostuff27-equss": ("cocostuff27", "dino_vits8"),
    "cocostuff27-equss-6adb9cc": ("cocostuff27", "dino_vits8"),
    "cocostuff27-stego": ("cocostuff27", "dino_vits8"),
    "cityscapes27-equss": ("cityscapes27", "dino_vitb8"),
    "cityscapes27-stego": ("cityscapes27", "dino_vitb8"),
    "potsdam3-equss": ("potsdam3", "dino_vitb8"),
    "potsdam3-stego": ("potsdam3", "dino_vitb8"),
    **{f"cocostuff27-{v}": ("cocostuff27", "dino_vits8") for v in ("M1", "M2", "M3", "Q2", "Q3")},
}
# the recipe each preset must have run with (official values; tests/test_presets.py has their sources)
STEGO = dict(clip_grad=0.0, dropout_per_branch=True, five_crop=True, amp=False, lr=5e-4, probe_lr=5e-3,
             pq=False, probe_upsample=False)
EQUSS = dict(clip_grad=10.0, dropout_per_branch=False, amp=True, lr=3e-4, probe_lr=3e-3, probe_upsample=True)
RECIPE = {
    "cocostuff27-equss": dict(EQUSS, five_crop=False, pq=True, head_dim=1024, num_codebooks=32, codebook_size=256),
    "cocostuff27-equss-6adb9cc": dict(EQUSS, five_crop=True, pq=True, head_dim=1024, num_codebooks=64,
                                      pq_normalize="none"),
    "cocostuff27-stego": dict(STEGO, head_dim=70),
    "cityscapes27-equss": dict(EQUSS, five_crop=True, pq=True, head_dim=1024, num_codebooks=32, codebook_size=32),
    "cityscapes27-stego": dict(STEGO, head_dim=100),
    "potsdam3-equss": dict(EQUSS, five_crop=True, pq=True, head_dim=256, num_codebooks=16, codebook_size=8),
    "potsdam3-stego": dict(STEGO, head_dim=70),
    "cocostuff27-M1": dict(EQUSS, five_crop=False, pq=False, head_dim=70),
    "cocostuff27-M2": dict(EQUSS, five_crop=False, pq=False, head_dim=384),
    "cocostuff27-M3": dict(EQUSS, five_crop=False, pq=False, head_dim=1024),
    "cocostuff27-Q2": dict(EQUSS, five_crop=False, pq=True, head_dim=384),
    "cocostuff27-Q3": dict(EQUSS, five_crop=False, pq=True, head_dim=1024),
}
N_CLASSES = {"cocostuff27": 27, "cityscapes27": 27, "potsdam3": 3}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="module")
def paper_env(tmp_path_factory):
    """Synthetic data root, an own cache folder with the ViT-S/8 release file, a ViT-B/8 file."""
    root = tmp_path_factory.mktemp("paper-data")
    counts = paper_data.write_all(root)
    cache = tmp_path_factory.mktemp("paper-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQUSS_CACHE", str(cache))  # the papermill kernel inherits it too
        vits8 = paper_data.write_dino_release(cache / "weights")
        vitb8 = paper_data.write_state_dict(tmp_path_factory.mktemp("weights") / "dino_vitb8_random.pth",
                                            "vit_base_patch8_224", dtype=torch.float16)
        yield SimpleNamespace(root=root, counts=counts, cache=cache, vits8=vits8, vitb8=vitb8)


def _overrides(env, backbone: str) -> list[str]:
    return TINY + ([f"train.weights={env.vitb8}"] if backbone == "dino_vitb8" else [])


def _feature_meta(cache: Path, preproc_prefix: str, weights_id: str) -> list[dict]:
    metas = [json.loads(p.read_text()) for p in (cache / "features").glob("*/meta.json")]
    return [m for m in metas if m["preproc_id"].startswith(preproc_prefix) and m["weights_id"] == weights_id]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_paper_preset_end_to_end(preset, paper_env, tmp_path, capsys):
    env = paper_env
    dataset, backbone = PRESETS[preset]
    out = tmp_path / preset
    sets = [a for s in _overrides(env, backbone) for a in ("--set", s)]
    rc = cli.main(["train", "--preset", preset, "--scale", "paper", "--data-root", str(env.root),
                   "--out", str(out), *sets])
    assert rc == 0, capsys.readouterr().err[-3000:]
    for name in ("config.yaml", "log.jsonl", "best.pt", "last.pt", "provenance.json"):
        assert (out / name).is_file(), name

    # what ran is the preset's recipe with only the tiny overrides
    ran = yaml.safe_load((out / "config.yaml").read_text())
    want = load_config(preset, "paper", overrides=_overrides(env, backbone) + [f"data.data_root={env.root}"])
    assert ran == want.to_dict()
    flat = {**ran["model"], **ran["data"], **ran["train"]}
    assert {k: flat[k] for k in RECIPE[preset]} == RECIPE[preset]
    assert (ran["scale"], ran["data"]["dataset"], ran["train"]["backbone"]) == ("paper", dataset, backbone)

    # provenance: which weights file, how many steps, finite losses
    prov = json.loads((out / "provenance.json").read_text())
    if backbone == "dino_vits8":
        assert prov["backbone_weights"] == f"dino:dino_deitsmall8_300ep_pretrain.pth:{_sha12(env.vits8)}"
    else:
        assert prov["backbone_weights"] == f"file:{_sha12(env.vitb8)}"
    assert prov["scale"] == "paper" and prov["input_path"] == "cache"
    assert prov["steps"] == prov["total_steps"] == 2
    assert all(_finite(v) for v in prov["last"].values()), prov["last"]
    assert _finite(prov["best"]["cluster_mIoU"]) and prov["best"]["step"] in (1, 2)
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    vals = [r for r in log if "val" in r]
    assert [r["step"] for r in vals] == [1, 2]  # train.val_every=1
    assert all(_finite(v) for r in vals for v in r["val"].values())

    # the feature cache of the training split: 5 crops per image with five-crop, and its kNN table
    n_train = env.counts[dataset]["train"]
    five = ran["data"]["five_crop"]
    prefix = f"{dataset}-train-r64-center-nearest" + ("-five0.5" if five else "-v1")
    metas = _feature_meta(env.cache, prefix, prov["backbone_weights"])
    assert len(metas) == 1, [m["preproc_id"] for m in metas]
    meta = metas[0]
    n = meta["n"]
    assert meta["complete"] and n == (5 if five else 1) * n_train
    assert (meta["h"], meta["w"]) == (8, 8) and meta["C"] == {"dino_vits8": 384, "dino_vitb8": 768}[backbone]
    knn_metas = [json.loads(p.read_text()) for p in (env.cache / "knn").glob("*.json")]
    assert any(k["preproc_id"] == meta["preproc_id"] and k["weights_id"] == meta["weights_id"]
               and k["n"] == n and k["complete"] for k in knn_metas)

    # evaluation (official protocol: no flip), without and with the dense CRF
    n_val = env.counts[dataset]["val"]
    for crf in (False, True):
        folder = out / ("eval_crf" if crf else "eval")
        argv = ["eval", "--checkpoint", str(out / "best.pt"), "--out", str(folder), "--workers", "1"]
        rc = cli.main(argv + (["--crf"] if crf else []))
        assert rc == 0, capsys.readouterr().err[-3000:]
        res = json.loads((folder / "eval.json").read_text())
        keys = ["cluster", "linear"] + (["cluster_crf", "linear_crf"] if crf else [])
        assert sorted(k for k in res if k not in ("provenance", "per_image_file")) == sorted(keys)
        assert (folder / res["per_image_file"]).is_file()  # the per-image counts beside it
        for k in keys:
            assert _finite(res[k]["Accuracy"]) and _finite(res[k]["mIoU"]), (k, res[k])
            assert 0 <= res[k]["Accuracy"] <= 100 and 0 <= res[k]["mIoU"] <= 100
            assert len(res[k]["per_class_iou"]) == N_CLASSES[dataset]
        p = res["provenance"]
        assert (p["crf"], p["flip"], p["split"], p["n_images"], p["scale"]) == (crf, False, "val", n_val, "paper")
        assert p["backbone_weights"] == prov["backbone_weights"]

@pytest.fixture(scope="module")
def tiny_run(paper_env, tmp_path_factory):
    """One 1-step cocostuff27-M1 run (no validation) for the checks below."""
    out = tmp_path_factory.mktemp("tiny-run")
    sets = [a for s in TINY + ["train.steps=1", "train.val_every=0"] for a in ("--set", s)]
    assert cli.main(["train", "--preset", "cocostuff27-M1", "--scale", "paper", "--data-root", str(paper_env.root),
                     "--out", str(out), *sets]) == 0
    return out


def test_eval_refuses_other_backbone_weights(tiny_run, tmp_path, capsys):
    """A checkpoint records the backbone weights it was trained on; `equss eval` with other weights
    (here: the record changed, as if the DINO file had been replaced) stops with one line."""
    state = torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=False)
    assert state["provenance"]["backbone_weights"].startswith("dino:dino_deitsmall8_300ep_pretrain.pth:")
    state["provenance"]["backbone_weights"] = "dino:dino_deitsmall8_300ep_pretrain.pth:000000000000"
    torch.save(state, tmp_path / "other.pt")
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "other.pt"), "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "was trained on dino_vits8 features from weights dino:dino_deitsmall8_300ep_pretrain.pth:000000000000" in err
    assert not (tmp_path / "eval" / "eval.json").exists()

def test_crf_eval_makes_one_worker_pool(tiny_run, paper_env, tmp_path, monkeypatch):
    """`equss eval --crf --workers N` starts one process pool for the whole evaluation (it started
    one per batch and probe: 2 x 1,088 pools for the 2,175 COCO val images), gives the pool at least
    N images at a time (batches of 2 kept all but 2 workers idle), and its numbers equal the
    single-process ones."""
    from equss.eval import crf

    pools = []

    class SerialPool:  # the pool's interface, in this process (a real spawn costs seconds here)
        def __init__(self, workers):
            pools.append(self)
            self.jobs = []  # images per map call

        def map(self, fn, jobs):
            self.jobs.append(len(jobs))
            return [fn(j) for j in jobs]

        def terminate(self):
            self.closed = True

        def join(self):
            pass

    monkeypatch.setattr(crf, "worker_pool", SerialPool)
    base = ["eval", "--checkpoint", str(tiny_run / "last.pt"), "--crf"]
    assert cli.main(base + ["--workers", "1", "--out", str(tmp_path / "w1")]) == 0
    assert pools == []
    assert cli.main(base + ["--workers", "3", "--out", str(tmp_path / "w3")]) == 0
    # 3 val images in evaluation batches of 2: the CRF waits for >= 3 images (one per worker),
    # then refines them for the cluster and the linear probe
    assert paper_env.counts["cocostuff27"]["val"] == 3
    assert len(pools) == 1 and pools[0].jobs == [3, 3] and pools[0].closed
    one, three = (json.loads((tmp_path / w / "eval.json").read_text()) for w in ("w1", "w3"))
    assert {k: v for k, v in one.items() if k != "provenance"} == {k: v for k, v in three.items() if k != "provenance"}


# ------------------------------------------------------------------------------ notebooks
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
# grids are notebook parameters: one cell each here (the dry run checks paths and shapes, not grid size)
SMALL_GRIDS = {"dims": [64], "Ms": [2], "Ks": [8]}


def _source(name: str) -> str:
    return (NOTEBOOK_DIR / f"{name}.py").read_text()


def _has_parameter(name: str, param: str) -> bool:
    return re.search(rf"^{param} = ", _source(name), flags=re.M) is not None


def _backbones(name: str) -> set[str]:
    """The backbones of the paper presets a notebook names (``cityscapes27-...`` or an f-string)."""
    src = _source(name)
    found = {PRESETS[p][1] for p in re.findall(r"(?:cocostuff27|cityscapes27|potsdam3)-[\w-]+", src) if p in PRESETS}
    if re.search(r"f[\"'](?:cityscapes27|potsdam3)-", src):
        found.add("dino_vitb8")
    if re.search(r"f[\"']cocostuff27-", src):
        found.add("dino_vits8")
    return found


# notebooks that train (name presets) first, then those that only read the others' results (claims)
NOTEBOOKS = sorted((p.stem for p in NOTEBOOK_DIR.glob("*.py")), key=lambda n: (not _backbones(n), n))


@pytest.fixture(scope="module")
def paper_results(tmp_path_factory):
    """One results folder for all notebooks (a notebook may read what the earlier ones wrote)."""
    return tmp_path_factory.mktemp("paper-results")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_paper_notebook_dry_run(name, paper_env, paper_results):
    """Each notebook at ``scale="paper"`` on the synthetic data, tiny steps via its ``overrides``."""
    if not _has_parameter(name, "overrides"):
        pytest.skip(f"notebooks/{name}.py has no `overrides` parameter yet (a papermill parameter applied to "
                    "every config); this dry run activates when the notebooks take it")
    pytest.importorskip("papermill")
    from equss.paper.notebooks import execute

    env = paper_env
    backbones = _backbones(name)
    # one `overrides` list applies to every config of the notebook: a ViT-B/8 weights file only fits
    # notebooks whose runs are all ViT-B/8
    assert len(backbones) <= 1, f"{name} mixes backbones {backbones}: one train.weights cannot serve both"
    overrides = _overrides(env, next(iter(backbones), "dino_vits8"))
    extra = {"overrides": overrides, **({"seeds": [0]} if _has_parameter(name, "seeds") else {}),
             **{k: v for k, v in SMALL_GRIDS.items() if _has_parameter(name, k)}}
    before = {p: p.stat().st_mtime_ns for p in paper_results.rglob("*") if p.is_file()}
    dst = execute(name, scale="paper", results=str(paper_results), data_root=str(env.root), extra=extra,
                  progress=False)
    assert dst.is_file()
    written = [p for p in paper_results.iterdir() if p.suffix in (".csv", ".md", ".png", ".json")
               and before.get(p) != p.stat().st_mtime_ns]
    assert written, f"{name} wrote no table, figure or provenance into {paper_results}"
    for prov in paper_results.glob("*.provenance.json"):
        if prov in written:
            assert json.loads(prov.read_text())["scale"] == "paper"
