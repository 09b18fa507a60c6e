"""Every measured number in a results folder traces to its run record (equss.paper.trace).

* A smoke-scale results folder made here by executing notebooks with papermill (the
  real pipeline: training, evaluation with and without the CRF, the raw-feature baseline,
  kept checkpoints, Fig. 4's analysis) must pass the check; tampering with one number or one
  record's commit must fail it.
* The committed ``results/proxy/`` is checked the same way once it holds run records.
* The checker itself on a hand-built folder: equal numbers pass; a changed number, an
  untraced column, a missing record and a checkpoint in a record are each reported.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from equss.paper import trace

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("table1_cocostuff", "fig4_entropy", "learning_curves")


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, data_root):
    pytest.importorskip("papermill")
    from equss.paper.notebooks import execute

    out = tmp_path_factory.mktemp("smoke-results")
    for name in NOTEBOOKS:
        execute(name, "smoke", results=str(out), data_root=str(data_root), device="cpu", progress=False)
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_smoke_results_trace_to_their_records(smoke_results):
    tables = {p.name for p in trace.tables(smoke_results)}
    assert {"table1.csv", "fig4.csv", "fig4_distance.csv", "learning_curves.csv"} <= tables
    assert trace.check(smoke_results) == []
    rows = _rows(smoke_results / "table1.csv")
    measured = [r for r in rows if r["source"] == "measured"]
    assert {r["eval"] for r in measured} == {"baseline.json", "eval.json", "eval_crf.json"}
    assert all(r["run"] and r["seed"] == "0" for r in measured)
    for rec in (smoke_results / "runs").iterdir():  # records carry no checkpoints
        assert not list(rec.glob("*.pt")), rec.name
        assert (rec / "provenance.json").is_file() or (rec / "baseline.json").is_file()


def test_tampered_number_and_foreign_record_are_caught(smoke_results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(smoke_results, copy)
    rows = _rows(copy / "table1.csv")
    i = next(i for i, r in enumerate(rows) if r["method"] == "EQUSS" and r["crf"] == "False")
    rows[i]["unsup_miou"] = str(float(rows[i]["unsup_miou"]) + 0.05)
    _write_rows(copy / "table1.csv", rows)
    problems = trace.check(copy)
    assert len(problems) == 1 and f"table1.csv:{i + 2}: unsup_miou" in problems[0]

    rec = next(p for p in (copy / "runs").iterdir() if (p / "provenance.json").is_file())
    prov = json.loads((rec / "provenance.json").read_text())
    prov["git_commit"] = "0" * 40
    (rec / "provenance.json").write_text(json.dumps(prov))
    assert any("2 git commits" in p for p in trace.check(copy))


def test_committed_proxy_results_trace_to_their_records():
    proxy = ROOT / "results" / "proxy"
    if not (proxy / "runs").is_dir():
        pytest.skip("results/proxy has no run records yet (runs/): they come with the regenerated proxy "
                    "(`make reproduce SCALE=proxy`)")
    assert trace.check(proxy) == []


def test_committed_executed_notebooks_ran_to_the_end():
    """An executed notebook in results/ is a finished papermill run: no cell still marked running or
    pending (papermill saves after every cell, so a copy taken mid-run would show half a result)."""
    notebooks = sorted((ROOT / "results").glob("*/notebooks/*.ipynb"))
    if not notebooks:
        pytest.skip("no executed notebooks committed under results/*/notebooks/")
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        states = {(c.get("metadata", {}).get("papermill") or {}).get("status") for c in cells}
        assert states <= {"completed", None}, (nb.relative_to(ROOT).as_posix(), states)


# ---------------------------------------------------------------------------- the checker on a hand-built folder
def _folder(tmp_path: Path) -> Path:
    res = tmp_path / "res"
    rec = res / "runs" / "camvid-equss-seed1-abc"
    rec.mkdir(parents=True)
    (rec / "config.yaml").write_text(yaml.safe_dump({"train": {"seed": 1}, "model": {"head_dim": 512}}))
    (rec / "provenance.json").write_text(json.dumps({"git_commit": "a" * 40, "code_fingerprint": "f" * 12}))
    (rec / "eval.json").write_text(json.dumps({"cluster": {"Accuracy": 55.123456789, "mIoU": 22.5},
                                               "linear": {"Accuracy": 80.0, "mIoU": 35.25}}))
    (rec / "eval_crf.json").write_text(json.dumps({"cluster_crf": {"Accuracy": 56.0, "mIoU": 23.0},
                                                   "linear_crf": {"Accuracy": 81.0, "mIoU": 36.0}}))
    base = {"method": "EQUSS", "dataset": "camvid", "seed": 1, "run": rec.name, "source": "measured", "dim": 512}
    _write_rows(res / "table.csv", [
        {**base, "crf": False, "eval": "eval.json", "unsup_acc": 55.123456789, "unsup_miou": 22.5, "linear_acc": 80.0,
         "linear_miou": 35.25},
        {**base, "crf": True, "eval": "eval_crf.json", "unsup_acc": 56.0, "unsup_miou": 23.0, "linear_acc": 81.0,
         "linear_miou": 36.0},
        {"method": "EQUSS [paper]", "dataset": "", "seed": "", "run": "", "source": "quoted (paper)", "dim": "",
         "crf": "", "eval": "", "unsup_acc": 53.8, "unsup_miou": 25.8, "linear_acc": 75.2, "linear_miou": 41.2}])
    return res


def test_checker_passes_equal_numbers_and_catches_each_kind_of_problem(tmp_path):
    res = _folder(tmp_path)
    assert trace.check(res) == []
    rows = _rows(res / "table.csv")

    def problems_with(mutate):
        changed = [dict(r) for r in rows]
        mutate(changed)
        _write_rows(res / "table.csv", changed)
        try:
            return trace.check(res)
        finally:
            _write_rows(res / "table.csv", rows)

    tampered = problems_with(lambda r: r[1].update(linear_miou="36.1"))  # a CRF number
    assert len(tampered) == 1 and "table.csv:3: linear_miou = 36.1" in tampered[0] and "eval_crf.json" in tampered[0]
    assert "seed = 2" in problems_with(lambda r: r[0].update(seed="2"))[0]
    assert "head_dim" in problems_with(lambda r: r[0].update(dim="256"))[0]
    assert "not traced" in problems_with(lambda r: [x.update(mystery="1.5") for x in r])[0]
    assert "no record" in problems_with(lambda r: r[0].update(run="another-run"))[0]
    assert problems_with(lambda r: r[2].update(unsup_acc="99")) == []  # quoted rows are not measured
    (res / "runs" / "camvid-equss-seed1-abc" / "best.pt").write_bytes(b"w")
    assert any("checkpoints are not part of a record" in p for p in trace.check(res))


def test_table_without_run_column_is_reported(tmp_path):
    res = _folder(tmp_path)
    _write_rows(res / "other.csv", [{"method": "x", "unsup_miou": 1.0}])
    assert trace.check(res) == ["other.csv: no run column (every table row must name its run record)"]


def test_rewritten_results_do_not_make_the_tree_dirty(tmp_path):
    """A reproduction rewrites committed files under results/ while it runs; its later runs must
    still name the same commit (all records of a results folder name one commit)."""
    import subprocess

    from equss.provenance import git_commit

    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table1.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "results" / "table1.csv").write_text("b\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
