"""Every committed table is what the code makes of its run records (equss.paper.trace, equss.paper.rebuild).

* A smoke-scale results folder made here by executing notebooks with papermill (the
  real pipeline: training, evaluation with and without the CRF, the raw-feature baseline,
  kept checkpoints, Fig. 4's analysis) must pass the check; tampering with one number or one
  record's commit must fail it.
* The committed ``results/proxy/`` is checked the same way once it holds run records; and each
  way a hostile review tampered with a copy of it (labels swapped, a seed's row dropped or
  duplicated, a measured row relabelled quoted, a number blanked, a Markdown mean edited, a
  claim's verdict edited, no-CRF numbers in a CRF row) is reported.
* The number-level checker on a hand-built folder: equal numbers pass; a changed number, an
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


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_smoke_results_trace_to_their_records(smoke_results):
    tables = {p.name for p in trace.tables(smoke_results)}
    assert {"table1.csv", "fig4.csv", "fig4_distance.csv", "learning_curves.csv"} <= tables
    assert trace.check(smoke_results) == []
    rows = _rows(smoke_results / "table1.csv")
    measured = [r for r in rows if r["source"] == "measured"]
    assert {r["eval"] for r in measured} == {"baseline.json", "eval.json", "eval_crf.json", "posthoc.json"}
    # the study's arms (issue 26): STEGO, M1 and EQUSS, online and post-hoc (EQUSS also quantised)
    assert {(r["method"], r["probe"]) for r in measured if r["eval"] == "posthoc.json"} == {
        ("STEGO", "post-hoc"), ("M1", "post-hoc"), ("EQUSS", "post-hoc"), ("EQUSS", "post-hoc quantised")}
    assert all(r["run"] and r["seed"] == "0" for r in measured)
    for rec in (smoke_results / "runs").iterdir():  # records carry no checkpoints
        assert not list(rec.glob("*.pt")), rec.name
        assert (rec / "provenance.json").is_file() or (rec / "baseline.json").is_file()


@pytest.mark.slow
def test_tampered_number_and_foreign_record_are_caught(smoke_results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(smoke_results, copy)
    rows = _rows(copy / "table1.csv")
    i = next(i for i, r in enumerate(rows) if r["method"] == "EQUSS" and r["crf"] == "False")
    rows[i]["unsup_miou"] = str(float(rows[i]["unsup_miou"]) + 1.0)  # also moves the Markdown's one-decimal mean
    _write_rows(copy / "table1.csv", rows)
    problems = trace.check(copy)  # the number, and the Markdown no longer the CSV's
    assert len(problems) == 2 and f"table1.csv:{i + 2}: unsup_miou" in problems[0], problems
    assert problems[1].startswith("table1.md:"), problems

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
    """An executed notebook in results/ is a finished run (:func:`equss.paper.notebooks.run_state`): stamped
    ``finished`` by the runner after every cell ran without error, never ``failed``, ``interrupted`` or
    ``executing`` (papermill saves after every cell, so a copy taken mid-run would show half a result).
    ``unstamped`` (every cell completed, no error output, no runner stamp) is accepted only for copies
    executed before the runner stamped its runs: the committed proxy set, until the study regenerates it."""
    from equss.paper.notebooks import run_state

    notebooks = sorted((ROOT / "results").glob("*/notebooks/*.ipynb"))
    if not notebooks:
        pytest.skip("no executed notebooks committed under results/*/notebooks/")
    for nb in notebooks:
        state = run_state(json.loads(nb.read_text()))
        assert state in ("finished", "unstamped"), (nb.relative_to(ROOT).as_posix(), state)


# ---------------------------------------------------------------------------- tampering with a copy of results/proxy
PROXY = ROOT / "results" / "proxy"
needs_proxy = pytest.mark.skipif(not (PROXY / "runs").is_dir(), reason="results/proxy has no run records yet")
MEASURED_COLS = ("unsup_acc", "unsup_miou", "linear_acc", "linear_miou")


@pytest.fixture
def proxy(tmp_path) -> Path:
    """A copy of the committed proxy results (records, tables, Markdown) to tamper with; without the
    claims, which follow from the tables (the claims test writes them as the code computes them)."""
    copy = tmp_path / "proxy"
    shutil.copytree(PROXY, copy, ignore=shutil.ignore_patterns("*.ipynb", "*.png", "claims.*"))
    return copy


def _table(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def _save(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def _line(rows: list[dict], **where) -> int:
    """The CSV line (header = 1) of the first measured row with these values."""
    return next(i for i, r in enumerate(rows, start=2)
                if r["source"] == "measured" and all(r[k] == v for k, v in where.items()))


def _hits(problems: list[str], prefix: str) -> list[str]:
    return [p for p in problems if p.startswith(prefix)]


@needs_proxy
def test_swapped_stego_and_equss_labels_are_caught(proxy):
    for name in ("table1.csv", "table2.csv"):
        header, rows = _table(proxy / name)
        swap = {"STEGO": "EQUSS", "EQUSS": "STEGO"}
        lines = [i for i, r in enumerate(rows, start=2) if r["source"] == "measured" and r["method"] in swap]
        for r in rows:
            if r["source"] == "measured":
                r["method"] = swap.get(r["method"], r["method"])
        _save(proxy / name, header, rows)
        problems = trace.check(proxy)
        for i in lines:
            label = rows[i - 2]["method"]
            hit = _hits(problems, f"{name}:{i}: method = {label!r} but runs/")
            assert len(hit) == 1 and hit[0].endswith(f"gives {swap[label]!r}"), (i, problems)


@needs_proxy
def test_dropped_worst_seed_row_is_caught(proxy):
    header, rows = _table(proxy / "table1.csv")
    equss = [r for r in rows if r["source"] == "measured" and r["method"] == "EQUSS" and r["crf"] == "False"]
    worst = min(equss, key=lambda r: float(r["unsup_miou"]))
    _save(proxy / "table1.csv", header, [r for r in rows if r is not worst])
    problems = trace.check(proxy)
    assert f"table1.csv: method EQUSS, crf False: no row for seed {worst['seed']} (the table's seeds: 0, 1, 2)" \
        in problems, problems
    assert _hits(problems, "table1.md:")  # its Markdown was made from all three seeds


@needs_proxy
def test_duplicated_best_seed_row_is_caught(proxy):
    header, rows = _table(proxy / "table1.csv")
    best = max((r for r in rows if r["source"] == "measured" and r["method"] == "EQUSS"),
               key=lambda r: float(r["unsup_miou"]))
    first = rows.index(best) + 2
    _save(proxy / "table1.csv", header, rows + [dict(best)])
    problems = trace.check(proxy)
    assert f"table1.csv:{len(rows) + 2}: a second row for {best['run']} {best['eval']} (first: line {first})" \
        in problems, problems


@needs_proxy
def test_measured_row_relabelled_quoted_is_caught(proxy):
    header, rows = _table(proxy / "table1.csv")
    i = _line(rows, method="EQUSS", crf="False", seed="2")
    rows[i - 2].update(source="quoted (paper)", unsup_miou="99.0")
    _save(proxy / "table1.csv", header, rows)
    problems = trace.check(proxy)
    assert _hits(problems, f"table1.csv:{i}: 'EQUSS' with source 'quoted (paper)' is neither a measured row nor"), \
        problems
    assert "table1.csv: method EQUSS, crf False: no row for seed 2 (the table's seeds: 0, 1, 2)" in problems


@needs_proxy
def test_blanked_number_is_caught(proxy):
    header, rows = _table(proxy / "table2.csv")
    i = _line(rows, method="EQUSS", dataset="dubai_aerial", seed="1")
    rows[i - 2]["linear_miou"] = ""
    _save(proxy / "table2.csv", header, rows)
    problems = trace.check(proxy)
    run = rows[i - 2]["run"]
    value = json.loads((proxy / "runs" / run / "eval.json").read_text())["linear"]["mIoU"]
    assert f"table2.csv:{i}: linear_miou = '' but runs/{run}/eval.json says {value!r}" in problems, problems


@needs_proxy
def test_edited_markdown_mean_is_caught(proxy):
    md = (proxy / "table1.md").read_text().split("\n")
    n = next(k for k, line in enumerate(md) if line.startswith("| EQUSS | camvid | no |"))
    cells = md[n].split(" | ")
    mean = cells[5].split(" ± ")[0]  # unsup_miou
    cells[5] = cells[5].replace(mean, f"{float(mean) + 3:.1f}", 1)
    md[n] = " | ".join(cells)
    (proxy / "table1.md").write_text("\n".join(md))
    problems = trace.check(proxy)
    assert _hits(problems, f"table1.md:{n + 1}: {md[n]!r} but the Markdown of table1.csv gives"), problems


@needs_proxy
def test_edited_claim_verdict_is_caught(proxy):
    from equss.paper import claims

    # the claims as the code computes them now (equss.paper.claims may have changed since the commit)
    claims.write(claims.paper_claims(claims.load_tables(proxy)), proxy)
    header, rows = _table(proxy / "claims.csv")
    was = rows[0]["verdict"]
    rows[0]["verdict"] = "holds" if was != "holds" else "contradicted"
    _save(proxy / "claims.csv", header, rows)
    problems = trace.check(proxy)
    assert _hits(problems, f"claims.csv:2: verdict = {rows[0]['verdict']!r} but equss.paper.claims (from the tables) "
                           f"gives {was!r}"), problems


@needs_proxy
@pytest.mark.parametrize("crf_cell", ["False", "Y"])
def test_no_crf_numbers_in_a_crf_row_are_caught(proxy, crf_cell):
    """A row of the CRF evaluation (``eval_crf.json``) carrying that file's numbers without the CRF,
    its ``crf`` cell written so that the number-level check reads the no-CRF group."""
    header, rows = _table(proxy / "table1.csv")
    i = _line(rows, method="EQUSS", crf="True", seed="0")
    row = rows[i - 2]
    doc = json.loads((proxy / "runs" / row["run"] / "eval_crf.json").read_text())
    for col, (group, key) in {"unsup_acc": ("cluster", "Accuracy"), "unsup_miou": ("cluster", "mIoU"),
                              "linear_acc": ("linear", "Accuracy"), "linear_miou": ("linear", "mIoU")}.items():
        row[col] = repr(doc[group][key])
    row["crf"] = crf_cell
    _save(proxy / "table1.csv", header, rows)
    problems = trace.check(proxy)
    assert f"table1.csv:{i}: crf = {crf_cell!r} but runs/{row['run']}/eval_crf.json gives True" in problems, problems
    for col in MEASURED_COLS:
        assert _hits(problems, f"table1.csv:{i}: {col} = {row[col]!r} but runs/{row['run']}/eval_crf.json says")


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
    assert trace.check_numbers(res) == []
    rows = _rows(res / "table.csv")

    def problems_with(mutate):
        changed = [dict(r) for r in rows]
        mutate(changed)
        _write_rows(res / "table.csv", changed)
        try:
            return trace.check_numbers(res)
        finally:
            _write_rows(res / "table.csv", rows)

    tampered = problems_with(lambda r: r[1].update(linear_miou="36.1"))  # a CRF number
    assert len(tampered) == 1 and "table.csv:3: linear_miou = 36.1" in tampered[0] and "eval_crf.json" in tampered[0]
    assert "seed = 2" in problems_with(lambda r: r[0].update(seed="2"))[0]
    assert "head_dim" in problems_with(lambda r: r[0].update(dim="256"))[0]
    assert "not traced" in problems_with(lambda r: [x.update(mystery="1.5") for x in r])[0]
    assert "no record" in problems_with(lambda r: r[0].update(run="another-run"))[0]
    assert problems_with(lambda r: r[2].update(unsup_acc="99")) == []  # quoted rows are not measured
    assert "linear_acc is blank" in problems_with(lambda r: r[0].update(linear_acc=""))[0]
    (res / "runs" / "camvid-equss-seed1-abc" / "best.pt").write_bytes(b"w")
    assert any("checkpoints are not part of a record" in p for p in trace.check_numbers(res))


def test_table_without_run_column_is_reported(tmp_path):
    res = _folder(tmp_path)
    _write_rows(res / "other.csv", [{"method": "x", "unsup_miou": 1.0}])
    assert trace.check_numbers(res) == ["other.csv: no run column (every table row must name its run record)"]
    assert any(p.startswith("other.csv: no rule to rebuild it") for p in trace.check(res))  # one rule per table


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


def test_a_slow_clean_filter_does_not_cost_each_run_its_commit(tmp_path):
    """A fresh clone with nbstripout's clean filter installed: every notebook is racily clean, and a
    `git status` that runs the filter per notebook took 14 s (longer than git_commit's time limit, so the
    commit was recorded as "unknown" and the next run paid again).  The filter is bypassed: the commit
    comes at once; a file whose content differs is still "+dirty"."""
    import os
    import subprocess
    import time

    from equss.provenance import git_commit

    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / ".gitattributes").write_text("*.ipynb filter=slow\n")
    (tmp_path / "a.ipynb").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    git("config", "filter.slow.clean", "sleep 30; cat")  # installed after the checkout, as `make setup` does
    git("config", "filter.slow.smudge", "cat")
    os.utime(tmp_path / "a.ipynb", ns=(time.time_ns(), time.time_ns() + 10**9))  # stat differs: content checked
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    t0 = time.perf_counter()
    assert git_commit(tmp_path) == sha
    assert time.perf_counter() - t0 < 10
    (tmp_path / "a.ipynb").write_text('{"outputs": 1}\n')
    assert git_commit(tmp_path) == sha + "+dirty"
