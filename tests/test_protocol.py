"""The study's evaluation protocol (issue 26): one checkpoint policy, the resolution check, and run
records as the cache of a new session.

* ``eval.checkpoint``: the proxy presets evaluate ``last.pt``, the paper presets ``best.pt``; on a run
  whose best and last checkpoints differ, each policy's evaluation equals ``evaluate_checkpoint`` of
  that file, and every evaluation records its policy and step.
* ``runs.run(cfg, resolution=N)`` (``eval_r<N>.json``) equals ``evaluate_checkpoint`` of the same
  checkpoint whose config says ``data.eval_resolution=N``; the executor plans it in the training's job.
* A new session (empty cache) with the committed records trains nothing the records hold (a spy on
  training, evaluation, the baseline and the post-hoc probes), returns the same numbers, and the plan
  counts those requests as cached; a record made by other code is not used, and an evaluation missing
  from the record trains again to the record's own log.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import error_line
from equss.config import load_config
from equss.errors import EqussError
from equss.paper import executor as ex
from equss.paper import jobs, runs
from equss.paper.executor import Request
from test_executor import fresh_cache, tiny
from test_reliability import write_camvid


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return write_camvid(tmp_path_factory.mktemp("protocol-camvid"))


def _numbers(doc: dict) -> dict:
    return {g: {k: doc[g][k] for k in ("mIoU", "Accuracy", "confusion", "assignment")}
            for g in ("cluster", "linear") if g in doc}


def _per_image(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k].tolist() for k in z.files}


# ---------------------------------------------------------------------------- the checkpoint policy
def test_proxy_presets_evaluate_last_and_paper_presets_best():
    for preset in ("camvid-equss", "camvid-stego", "camvid-M1", "dubai-equss", "dubai-stego", "dubai-M1"):
        for scale in ("smoke", "proxy"):
            assert load_config(preset, scale).eval.checkpoint == "last", (preset, scale)
    for preset in ("cocostuff27-equss", "cocostuff27-stego", "cityscapes27-equss", "potsdam3-stego", "cocostuff27-M1",
                   "potsdam3-M1", "cityscapes27-M1"):
        assert load_config(preset, "paper").eval.checkpoint == "best", preset
    m1 = load_config("dubai-M1", "proxy")
    assert (m1.model.head_dim, m1.model.pq, m1.train.lr) == (70, False, load_config("dubai-equss", "proxy").train.lr)
    with pytest.raises(EqussError, match="eval.checkpoint must be one of best, last"):
        load_config("camvid-equss", "smoke", overrides=["eval.checkpoint=median"])


def test_each_policy_evaluates_its_own_checkpoint(camvid, tmp_path, monkeypatch):
    from equss.pipeline.checkpoint import load_checkpoint, save_checkpoint
    from equss.pipeline.evaluate import evaluate_checkpoint

    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 0)
    assert cfg.eval.checkpoint == "last"
    last = runs.run(cfg)
    folder = Path(last["run_dir"])
    # a best.pt that is not the last weights: last.pt's state at step 1 with the linear probe negated
    state = load_checkpoint(folder / "last.pt")
    state["model"]["linear_probe.conv.weight"] = -state["model"]["linear_probe.conv.weight"]
    state["step"] = 1
    save_checkpoint(folder / "best.pt", state)
    best = runs.run(cfg, checkpoint="best")
    assert (last["eval_file"], best["eval_file"]) == ("eval.json", "eval_best.json")
    assert (last["provenance"]["checkpoint_policy"], last["provenance"]["checkpoint_step"]) == ("last", 2)
    assert (best["provenance"]["checkpoint_policy"], best["provenance"]["checkpoint_step"]) == ("best", 1)
    kw = dict(device="cpu", data_root=str(camvid), progress=False)
    assert _numbers(last) == _numbers(evaluate_checkpoint(folder / "last.pt", **kw))
    assert _numbers(best) == _numbers(evaluate_checkpoint(folder / "best.pt", **kw))
    assert last["linear"]["confusion"] != best["linear"]["confusion"]
    assert last["cluster"]["confusion"] == best["cluster"]["confusion"]  # only the linear probe differs
    # a paper-style config of the same run (policy best) names best.pt's evaluation eval.json
    paper_style = tiny(camvid, 0, "camvid-equss", "eval.checkpoint=best")
    assert runs.eval_file(paper_style) == "eval.json" and runs.eval_file(paper_style, checkpoint="last") == "eval_last.json"
    assert runs.run(paper_style)["cluster"] == best["cluster"]  # its eval.json: best.pt, not last's eval.json
    assert json.loads((folder / "eval.json").read_text())["provenance"]["checkpoint_policy"] == "best"
    assert runs.run(cfg)["provenance"]["checkpoint_policy"] == "last"  # and back: never another policy's file


# ---------------------------------------------------------------------------- the resolution check
def test_evaluation_at_another_resolution(camvid, tmp_path, monkeypatch):
    from equss.pipeline.checkpoint import load_checkpoint, save_checkpoint
    from equss.pipeline.evaluate import evaluate_checkpoint

    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 1)
    res = runs.run(cfg, resolution=56)
    folder = Path(res["run_dir"])
    assert res["eval_file"] == "eval_r56.json" and res["per_image_file"] == "eval_r56.per_image.npz"
    assert res["provenance"]["resolution"] == 56 and res["provenance"]["config"]["data"]["eval_resolution"] == 56
    assert res["provenance"]["config_key"] == cfg.key()  # the trained weights' key
    # independent: the same checkpoint whose own config says data.eval_resolution=56
    state = load_checkpoint(folder / "last.pt")
    state["config"]["data"]["eval_resolution"] = 56
    save_checkpoint(tmp_path / "at56.pt", state)
    want = evaluate_checkpoint(tmp_path / "at56.pt", device="cpu", data_root=str(camvid), progress=False)
    assert _numbers(res) == _numbers(want)
    got = _per_image(folder / "eval_r56.per_image.npz")
    assert got["cluster"] == want["per_image"].groups["cluster"].tolist()
    assert got["linear"] == want["per_image"].groups["linear"].tolist()
    plain = runs.run(cfg)
    assert plain["eval_file"] == "eval.json" and plain["provenance"]["resolution"] == 28
    assert _numbers(plain) != _numbers(res)  # 4x4 patches, not 2x2: another evaluation
    assert runs.run(cfg, resolution=28)["eval_file"] == "eval.json"  # the config's own resolution is eval.json
    for bad in (0, 2000, 5.5, "x"):
        with pytest.raises(EqussError, match="evaluation resolution must be an integer"):
            runs.run(cfg, resolution=bad)
    # the executor: one job for the training's evaluations, the prepare job builds the 56 px cache
    fresh_cache(monkeypatch, tmp_path / "cache2")
    reqs = [Request.run(cfg), Request.run(cfg, resolution=56), Request.posthoc(cfg)]
    todo = ex.jobs_for(reqs)
    assert [j["kind"] for j in todo] == ["prepare", "run"]
    assert todo[1]["evals"] == [[False, False, None], [False, False, 56]] and todo[1]["posthoc"]
    assert todo[0]["resolutions"] == [56] and todo[0]["baseline"]  # the post-hoc probes read the baseline's cache


def test_eval_cli_takes_a_resolution(camvid, tmp_path, capsys, monkeypatch):
    from equss import cli

    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 2)
    folder = Path(runs.run(cfg, resolution=56)["run_dir"])
    assert cli.main(["eval", "--checkpoint", str(folder / "last.pt"), "--resolution", "56", "--device", "cpu",
                     "--out", str(tmp_path / "ev"), "--data-root", str(camvid)]) == 0
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert _numbers(doc) == _numbers(json.loads((folder / "eval_r56.json").read_text()))
    line = error_line(capsys, ["eval", "--checkpoint", str(folder / "last.pt"), "--resolution", "0"])
    assert "evaluation resolution must be an integer in [1, 1024]" in line


# ---------------------------------------------------------------------------- records as the cache of a new session
def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "run_dir"}


@pytest.mark.slow
def test_a_new_session_takes_its_records_as_the_cache(camvid, tmp_path, monkeypatch):
    first = fresh_cache(monkeypatch, tmp_path / "session1")
    rec = tmp_path / "results" / "runs"
    cfg = tiny(camvid, 3, "camvid-equss", "train.keep_checkpoints=true")
    a = runs.run(cfg, records=rec)
    a56 = runs.run(cfg, records=rec, resolution=56)
    steps = runs.step_evaluations(cfg, a, records=rec)
    ph = runs.posthoc(cfg, records=rec)
    base = runs.baseline(cfg, records=rec)
    reqs = [Request.run(cfg), Request.run(cfg, resolution=56), Request.steps(cfg), Request.posthoc(cfg),
            Request.baseline(cfg)]
    assert not list((rec / a["run"]).glob("*.pt"))

    # session 2: a fresh checkout's empty cache; nothing may be trained or evaluated again
    second = fresh_cache(monkeypatch, tmp_path / "session2", first)
    assert ex.plan(reqs, predict=False)["counts"]["cached"] == 0
    assert ex.plan(reqs, predict=False, records=rec)["counts"] == {"cached": 5, "evaluate": 0, "new": 0}
    assert ex.jobs_for(reqs, records=rec) == []

    def boom(*a, **k):
        raise AssertionError("computed again although the record holds it")

    import equss.pipeline.baseline as bl
    import equss.pipeline.evaluate as ev
    import equss.pipeline.posthoc as ph_mod
    import equss.pipeline.train as tr
    for mod, name in ((tr, "train"), (ev, "evaluate_checkpoint"), (bl, "run_baseline"), (ph_mod, "run_posthoc")):
        monkeypatch.setattr(mod, name, boom)
    b = runs.run(cfg, records=rec)
    assert _strip(b) == _strip(a) and Path(b["run_dir"]).parent == second / "runs"
    assert _strip(runs.run(cfg, records=rec, resolution=56)) == _strip(a56)
    assert {k: _strip(v) for k, v in runs.step_evaluations(cfg, b, records=rec).items()} == \
        {k: _strip(v) for k, v in steps.items()} and sorted(steps) == [1, 2]
    assert _strip(runs.posthoc(cfg, records=rec)) == _strip(ph)
    assert runs.baseline(cfg, records=rec) == base
    seeded = Path(b["run_dir"])
    assert not list(seeded.glob("*.pt")) and (seeded / "eval.per_image.npz").is_file()
    assert (seeded / "provenance.json").read_text() == (rec / a["run"] / "provenance.json").read_text()
    # the executor's serial path returns them without a job
    out = ex.run_many(reqs, records=rec, progress=False, logs=tmp_path / "logs")
    assert _strip(out[0]) == _strip(a) and out[4] == base

    # a record of other code is not used: training is asked for
    other = tmp_path / "other" / "runs"
    shutil.copytree(rec, other)
    prov = json.loads((other / a["run"] / "provenance.json").read_text())
    prov["code_fingerprint"] = "0" * 12
    (other / a["run"] / "provenance.json").write_text(json.dumps(prov))
    fresh_cache(monkeypatch, tmp_path / "session3", first)
    assert ex.plan([Request.run(cfg)], predict=False, records=other)["counts"]["new"] == 1
    with pytest.raises(AssertionError, match="computed again"):
        runs.run(cfg, records=other)

    # an evaluation the record lacks, without a checkpoint: trained again, to the record's own log
    monkeypatch.undo()
    third = fresh_cache(monkeypatch, tmp_path / "session4", first)
    runs.run(cfg, records=rec)  # seeded from the record: no checkpoint in the cache
    assert ex.plan([Request.run(cfg, crf=True)], predict=False, records=rec)["counts"]["new"] == 1
    runs.run(cfg, records=rec, crf=True)
    folder = third / "runs" / Path(b["run_dir"]).name
    assert (folder / "last.pt").is_file() and (rec / a["run"] / "eval_crf.json").is_file()

    def losses(path):
        return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in path.read_text().splitlines()]
    assert losses(folder / "log.jsonl") == losses(rec / a["run"] / "log.jsonl")
    assert _strip(runs.run(cfg, records=rec)) == _strip(a)  # taken again from the record after the retraining


def test_job_runs_every_evaluation_of_a_training(camvid, tmp_path, monkeypatch):
    """A worker's job (jobs.do) evaluates every resolution and the post-hoc probes of its training."""
    fresh_cache(monkeypatch, tmp_path / "cache")
    cfg = tiny(camvid, 4)
    reqs = [Request.run(cfg), Request.run(cfg, resolution=56), Request.posthoc(cfg)]
    for job in ex.jobs_for(reqs):
        jobs.do(job)
    folder = runs.run_dir(cfg)
    assert {"eval.json", "eval_r56.json", "posthoc.json", "posthoc.per_image.npz"} <= {p.name for p in folder.iterdir()}
    assert ex.plan(reqs, predict=False)["counts"] == {"cached": 3, "evaluate": 0, "new": 0}
    assert torch.load(folder / "last.pt", weights_only=False)["step"] == 2


# ---------------------------------------------------------------------------- the study's Table 1, traced to its records
def _csv(path: Path) -> tuple[list[str], list[dict]]:
    import csv

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def _save_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_study_table1_rows_trace_to_their_records(camvid, tmp_path, monkeypatch):
    """Table 1 as the study builds it (raw features, STEGO, M1, EQUSS; online without and with the CRF,
    post-hoc and post-hoc quantised, the check resolution) passes the traceability check, and each
    new column is checked: a relabelled probe, an edited resolution or recipe, a missing check row."""
    from equss.paper import quoted as paper
    from equss.paper import tables, trace

    fresh_cache(monkeypatch, tmp_path / "cache")
    res = tmp_path / "results"
    rec = res / "runs"
    base_cfg = tiny(camvid, 0)
    rows = [tables.row("DINO (raw features)", runs.baseline(base_cfg, records=rec), "camvid", 0),
            tables.row("DINO (raw features)", runs.baseline(tiny(camvid, 0, "camvid-equss", "data.eval_resolution=56"),
                                                            records=rec), "camvid", 0)]
    for label, preset in (("STEGO", "camvid-stego"), ("M1", "camvid-M1"), ("EQUSS", "camvid-equss")):
        cfg = tiny(camvid, 0, preset)
        ph = runs.posthoc(cfg, records=rec)
        rows += [tables.row(label, runs.run(cfg, records=rec), "camvid", 0),
                 tables.row(label, runs.run(cfg, crf=True, records=rec), "camvid", 0, crf=True),
                 tables.row(label, runs.run(cfg, resolution=56, records=rec), "camvid", 0),
                 tables.row(label, ph, "camvid", 0, probe="post-hoc")]
        if preset == "camvid-equss":
            rows.append(tables.row(label, ph, "camvid", 0, probe="post-hoc quantised"))
    rows += paper.quoted_rows(paper.TABLE1, " [CocoStuff-27, ViT-S/8]")
    tables.save_table(rows, res, "table1", caption="Table 1")
    tables.save_provenance(res, "table1", "smoke", {}, seeds=[0])
    problems = trace.check(res)
    assert problems == [], "\n".join(problems)
    header, saved = _csv(res / "table1.csv")
    assert header[6:9] == ["probe", "resolution", "recipe"]
    got = {(r["method"], r["crf"], r["probe"], r["resolution"], r["recipe"]) for r in saved if r["source"] == "measured"}
    assert ("DINO (raw features)", "False", "online", "56", "\u2014") in got
    assert ("STEGO", "True", "online", "28", "STEGO") in got and ("M1", "False", "post-hoc", "28", "EQUSS") in got
    assert ("EQUSS", "False", "post-hoc quantised", "28", "EQUSS") in got and ("EQUSS", "False", "online", "56", "EQUSS") in got

    def problems_with(mutate) -> list[str]:
        changed = [dict(r) for r in saved]
        mutate(changed)
        _save_csv(res / "table1.csv", header, changed)
        try:
            return trace.check(res)
        finally:
            _save_csv(res / "table1.csv", header, saved)

    i = next(k for k, r in enumerate(saved) if r["method"] == "EQUSS" and r["probe"] == "post-hoc quantised")
    swapped = problems_with(lambda rs: rs[i].update(probe="post-hoc"))  # the head part's row twice, the quantised none
    assert any(f"table1.csv:{i + 2}: a second row for" in p for p in swapped), swapped
    j = next(k for k, r in enumerate(saved) if r["method"] == "M1" and r["resolution"] == "56")
    moved = problems_with(lambda rs: rs[j].update(resolution="28"))
    assert any(p.startswith(f"table1.csv:{j + 2}: resolution = '28' but runs/") and p.endswith("gives 56")
               for p in moved), moved
    k = next(k for k, r in enumerate(saved) if r["method"] == "STEGO" and r["crf"] == "False" and r["probe"] == "online"
             and r["resolution"] == "28")
    recipe = problems_with(lambda rs: rs[k].update(recipe="EQUSS"))
    assert any(p.startswith(f"table1.csv:{k + 2}: recipe = 'EQUSS' but runs/") for p in recipe), recipe
    dropped = problems_with(lambda rs: rs.pop(j))
    assert any("no rows for method M1, crf False, probe online, resolution 56" in p for p in dropped), dropped
    # the number-level check reads a post-hoc row's numbers from its part and its resolution from the file
    assert trace.check_numbers(res) == []
    n = problems_with(lambda rs: rs[i].update(unsup_miou=str(float(rs[i]["unsup_miou"]) + 1)))
    assert any(f"table1.csv:{i + 2}: unsup_miou" in p for p in n), n
    doc = json.loads((rec / saved[i]["run"] / "posthoc.json").read_text())
    assert float(saved[i]["unsup_miou"]) == doc["quantised"]["cluster"]["mIoU"]


def test_evaluated_checkpoint_follows_the_evaluations_policy(tmp_path):
    """Figs 4/5 and the shipped model load the weights the table measured: the evaluation's
    checkpoint_policy (last.pt at proxy scale), best.pt for an evaluation that names none; a folder
    not from the run cache is never trained into."""
    from equss.paper import runs

    assert runs.evaluated_checkpoint({"provenance": {"checkpoint_policy": "last"}}, tmp_path,
                                     train_missing=False) == tmp_path / "last.pt"
    assert runs.evaluated_checkpoint({"provenance": {"checkpoint_policy": "best"}}, tmp_path,
                                     train_missing=False) == tmp_path / "best.pt"
    assert runs.evaluated_checkpoint({"run_dir": str(tmp_path)}, train_missing=False) == tmp_path / "best.pt"
    assert list(tmp_path.iterdir()) == []
