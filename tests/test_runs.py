"""The notebooks' run cache (equss.paper.runs): keyed by config and code, clean retrains,
run records without checkpoints.  Training and evaluation are replaced by stand-ins that
write what the real ones write, so the cache logic is what is tested here."""
import json
from pathlib import Path

import pytest

from equss.config import load_config
from equss.paper import runs


@pytest.fixture()
def fake_pipeline(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "cache"))
    calls = {"train": [], "eval": 0}

    def train(cfg, out, resume=False, progress=True, overwrite=False):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        calls["train"].append({"resume": resume, "existing": sorted(p.name for p in out.iterdir() if p.name != ".lock")})
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 1}) + "\n")
        (out / "config.yaml").write_text(f"seed: {cfg.train.seed}\n")
        (out / "best.pt").write_bytes(b"weights")
        (out / "last.pt").write_bytes(b"weights")
        (out / "provenance.json").write_text("{}")

    def evaluate_checkpoint(ckpt, out=None, crf=False, flip=True, **kw):
        calls["eval"] += 1
        assert Path(ckpt).is_file()
        return {"cluster": {"Accuracy": 50.0, "mIoU": 20.0}, "linear": {"Accuracy": 70.0, "mIoU": 30.0},
                "provenance": {"crf": crf}}

    import equss.pipeline.evaluate as ev
    import equss.pipeline.train as tr
    monkeypatch.setattr(tr, "train", train)
    monkeypatch.setattr(ev, "evaluate_checkpoint", evaluate_checkpoint)
    return calls


def test_cached_once_then_reused_and_recorded(fake_pipeline, tmp_path):
    cfg = load_config("camvid-equss", "smoke", overrides=["train.seed=2"])
    rec = tmp_path / "results" / "runs"
    a = runs.run(cfg, records=rec)
    b = runs.run(cfg, records=rec)
    assert len(fake_pipeline["train"]) == 1 and fake_pipeline["eval"] == 1
    assert a["cluster"] == b["cluster"] and a["run"] == f"camvid-equss-seed2-{cfg.key()}"
    files = sorted(p.name for p in (rec / a["run"]).iterdir())
    assert files == ["config.yaml", "eval.json", "log.jsonl", "provenance.json"]  # no checkpoints
    runs.run(cfg, crf=True, records=rec)  # a second evaluation of the same training
    assert len(fake_pipeline["train"]) == 1 and (rec / a["run"] / "eval_crf.json").is_file()


def test_code_change_makes_the_run_stale(fake_pipeline, monkeypatch):
    cfg = load_config("camvid-equss", "smoke")
    runs.run(cfg)
    monkeypatch.setattr(runs, "running_code_fingerprint", lambda: "another-code")
    runs.run(cfg)
    assert len(fake_pipeline["train"]) == 2
    assert fake_pipeline["train"][1]["existing"] == []  # a new folder, nothing reused


def test_retrain_starts_from_an_empty_folder(fake_pipeline):
    cfg = load_config("camvid-equss", "smoke")
    runs.run(cfg)
    runs.run(cfg, retrain=True)
    assert fake_pipeline["train"][1] == {"resume": False, "existing": []}
    log = (runs.run_dir(cfg) / "log.jsonl").read_text().splitlines()
    assert len(log) == 1  # not appended to the first run's log


def test_interrupted_run_resumes_and_leftovers_without_checkpoint_are_cleared(fake_pipeline):
    cfg = load_config("camvid-equss", "smoke")
    folder = runs.run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"partial")  # killed mid-training
    runs.run(cfg)
    assert fake_pipeline["train"][0]["resume"] is True
    other = load_config("camvid-equss", "smoke", overrides=["train.seed=5"])
    f2 = runs.run_dir(other)
    f2.mkdir(parents=True)
    (f2 / "best.pt").write_bytes(b"stale")  # no last.pt: cannot resume, must not be reused
    (f2 / "log.jsonl").write_text('{"step": 99}\n')
    runs.run(other)
    assert fake_pipeline["train"][1] == {"resume": False, "existing": []}


def test_proxy_step_count_comes_from_the_learning_curves(tmp_path, data_root):
    """At proxy scale every config takes the step count the learning-curve notebook chose on
    validation (the largest of the methods' chosen steps); a notebook's own keyword and the
    user's overrides still win; other scales keep the preset's; a results folder without the file
    takes the committed results/proxy choice (the preset's while there is none)."""
    preset_steps = load_config("camvid-equss", "proxy").train.steps
    committed = runs.chosen_steps(runs.COMMITTED / "proxy")
    out, cfg = runs.setup("proxy", str(tmp_path), data_root=str(data_root), device="cpu")
    assert cfg("cocostuff27-equss").train.steps == (committed or preset_steps)  # no learning_curves.json here

    (tmp_path / "learning_curves.json").write_text(json.dumps(
        {"chosen": {"STEGO": {"step": 250}, "EQUSS": {"step": 450}}}))
    assert runs.chosen_steps(tmp_path) == 450
    out, cfg = runs.setup("proxy", str(tmp_path), data_root=str(data_root), device="cpu")
    assert cfg("cocostuff27-stego", 1).train.steps == 450
    assert cfg("cocostuff27-stego", 1).train.seed == 1
    assert cfg("cocostuff27-equss", **{"train.steps": 600}).train.steps == 600  # the notebook's keyword
    out, cfg = runs.setup("proxy", str(tmp_path), data_root=str(data_root), device="cpu",
                          overrides=["train.steps=7"])
    assert cfg("cocostuff27-equss", **{"train.steps": 600}).train.steps == 7  # the user's override, last
    out, cfg = runs.setup("smoke", str(tmp_path), data_root=str(data_root), device="cpu")
    assert cfg("cocostuff27-equss").train.steps == load_config("camvid-equss", "smoke").train.steps
