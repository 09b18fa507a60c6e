"""tools/commit_results.py in a scratch git repository: only traceable sets are committed, and a
round whose only change is reproduce.json's running wall time makes no commit of its own."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import commit_results  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="no git")
HEADER = "method,dataset,seed,crf,run,eval,unsup_acc,unsup_miou,linear_acc,linear_miou,source\n"


def record(results: Path, name: str, miou: float) -> str:
    r = results / "runs" / name
    r.mkdir(parents=True)
    (r / "provenance.json").write_text(json.dumps({"git_commit": "c0ffee", "code_fingerprint": "f1"}))
    (r / "eval.json").write_text(json.dumps({"cluster": {"Accuracy": 50.0, "mIoU": miou},
                                             "linear": {"Accuracy": 70.0, "mIoU": 30.0}}))
    (r / ".lock").write_text("")  # a run's lock file is never copied
    return f"STEGO,camvid,0,False,{name},eval.json,50.0,{miou},70.0,30.0,measured\n"


def commits(repo: Path) -> list[str]:
    out = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.fixture
def repos(tmp_path, monkeypatch):
    main, repro = tmp_path / "main", tmp_path / "repro"
    (main / "tools").mkdir(parents=True)
    for tool in ("update_readme.py", "budget.py"):  # update_readme shows budget.py's table
        shutil.copy(ROOT / "tools" / tool, main / "tools")
    shutil.copy(ROOT / "README.md", main)
    for k, v in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                 "GIT_COMMITTER_EMAIL": "t@t"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # no tools/__pycache__ in the scratch repository
    (main / ".gitignore").write_text("__pycache__/\n")
    subprocess.run(["git", "init", "-q"], cwd=main, check=True)
    subprocess.run(["git", "add", "."], cwd=main, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "start"], cwd=main, check=True)
    monkeypatch.setattr(commit_results, "ROOT", main)
    return main, repro


def test_rounds(repos):
    main, repro = repos
    src = repro / "results" / "proxy"
    assert commit_results.one_round(repro, "proxy").startswith("nothing yet")

    row = record(src, "camvid-stego-seed0-aaa", 20.0)
    (src / "table1.csv").write_text(HEADER + row.replace(",20.0,", ",20.5,"))  # disagrees with its record
    assert commit_results.one_round(repro, "proxy").startswith("waiting: 1 traceability problem")
    assert not (main / "results").exists() and commits(main) == ["start"]

    (src / "table1.csv").write_text(HEADER + row)
    (src / "table1.md").write_text("| STEGO | 20.0 |")
    assert commit_results.one_round(repro, "proxy") == "proxy reproduction: 1 run records (4 files new or changed)"
    assert len(commits(main)) == 2
    assert not (main / "results/proxy/runs/camvid-stego-seed0-aaa/.lock").exists()
    assert "| STEGO | 20.0 |" in (main / "results/proxy/README.md").read_text()  # results page refreshed in the same commit
    assert subprocess.run(["git", "status", "--porcelain"], cwd=main, capture_output=True,
                          text=True).stdout == ""
    assert commit_results.one_round(repro, "proxy") == "no new results"

    (src / "reproduce.json").write_text(json.dumps({"finished": False, "wall_h": 1.0, "peak_rss_mib": 9.0}))
    assert commit_results.one_round(repro, "proxy").startswith("no new results (only reproduce.json")
    assert len(commits(main)) == 2 and (main / "results/proxy/reproduce.json").is_file()  # copied, not committed

    row2 = record(src, "camvid-stego-seed1-bbb", 21.0)
    (src / "table1.csv").write_text(HEADER + row + row2.replace(",0,", ",1,", 1))
    (src / "reproduce.json").write_text(json.dumps({"finished": False, "wall_h": 2.0, "peak_rss_mib": 9.0}))
    assert commit_results.one_round(repro, "proxy") == "proxy reproduction: 2 run records (4 files new or changed)"
    shown = subprocess.run(["git", "show", "HEAD:results/proxy/reproduce.json"], cwd=main, capture_output=True,
                           text=True, check=True).stdout
    assert json.loads(shown)["wall_h"] == 2.0

    (src / "reproduce.json").write_text(json.dumps({"finished": True, "wall_h": 3.0, "peak_rss_mib": 9.0}))
    assert commit_results.one_round(repro, "proxy") == "proxy reproduction: 2 run records (1 files new or changed)"
    assert len(commits(main)) == 4


def _notebook(path: Path, states: list[str], stamp: str | None = None) -> None:
    """An executed notebook with these papermill cell states; ``stamp``: the runner's final status."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"equss": {"status": stamp}} if stamp else {}
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"papermill": {"status": st}}}
                                          for st in states], "metadata": meta, "nbformat": 4}))


def test_notebook_still_executing_is_not_copied(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _notebook(src / "notebooks" / "done.ipynb", ["completed", "completed"], stamp="finished")
    _notebook(src / "notebooks" / "running.ipynb", ["completed", "running", "pending"])
    _notebook(src / "notebooks" / "queued.ipynb", ["pending", "pending"])
    _notebook(src / "notebooks" / "failed.ipynb", ["completed", "failed", "pending"])
    # an interrupted run papermill saved with every cell "completed": the runner's stamp tells
    _notebook(src / "notebooks" / "interrupted.ipynb", ["completed", "completed"], stamp="interrupted")
    _notebook(src / "notebooks" / "unchecked.ipynb", ["completed", "completed"])  # not stamped by the runner
    (src / "notebooks" / "torn.ipynb").write_text('{"cells": [')  # being written
    (src / "reproduce.json.tmp").write_text("{")  # an atomic write in flight
    assert commit_results.copy_tree(src, dst) == ["notebooks/done.ipynb"]
    assert sorted(p.name for p in dst.rglob("*")) == ["done.ipynb", "notebooks"]
    assert commit_results.unfinished(src) == ["notebooks/failed.ipynb (failed)",
                                              "notebooks/interrupted.ipynb (interrupted)"]
    _notebook(src / "notebooks" / "running.ipynb", ["completed", "completed", "completed"], stamp="finished")
    assert commit_results.copy_tree(src, dst) == ["notebooks/running.ipynb"]


def test_readme_refresh_failure_is_reported_not_committed(repos):
    main, repro = repos
    src = repro / "results" / "proxy"
    row = record(src, "camvid-stego-seed0-aaa", 20.0)
    (src / "table1.csv").write_text(HEADER + row)
    (main / "tools" / "update_readme.py").write_text("raise SystemExit('README markers missing')\n")
    msg = commit_results.one_round(repro, "proxy")
    assert msg == "not committed: tools/update_readme.py failed: README markers missing"
    assert commits(main) == ["start"]
    shutil.copy(ROOT / "tools" / "update_readme.py", main / "tools")  # mended: the next round commits
    assert commit_results.one_round(repro, "proxy") == "proxy reproduction: 1 run records (3 files new or changed)"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=main, capture_output=True, text=True).stdout == ""


def test_failed_notebook_is_named_in_the_commit(repos):
    main, repro = repos
    src = repro / "results" / "proxy"
    (src / "table1.csv").parent.mkdir(parents=True)
    (src / "table1.csv").write_text(HEADER + record(src, "camvid-stego-seed0-aaa", 20.0))
    _notebook(src / "notebooks" / "table3_ablation.ipynb", ["completed", "failed", "pending"])
    msg = commit_results.one_round(repro, "proxy")
    assert msg.endswith("; NOT COMMITTED: notebooks/table3_ablation.ipynb (failed)"), msg
    assert commits(main)[0] == msg


def test_uncommitted_reads_git_status(repos):
    main, _ = repos
    (main / "results" / "proxy" / "sub dir").mkdir(parents=True)
    (main / "results" / "proxy" / "sub dir" / 'odd "name".json').write_text("{}")
    (main / "results" / "proxy" / "a.csv").write_text("x\n")
    subprocess.run(["git", "add", "."], cwd=main, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "add"], cwd=main, check=True)
    assert commit_results.uncommitted("results/proxy") == []
    subprocess.run(["git", "mv", "results/proxy/a.csv", "results/proxy/b.csv"], cwd=main, check=True)
    (main / "results" / "proxy" / "sub dir" / 'odd "name".json').write_text('{"a": 1}')
    (main / "results" / "other.txt").write_text("not this scale")
    assert commit_results.uncommitted("results/proxy") == ["b.csv", 'sub dir/odd "name".json']
    (main / "results" / "proxy" / "c.csv.copying").write_text("half")  # a round that crashed before its rename
    assert commit_results.uncommitted("results/proxy") == ["b.csv", 'sub dir/odd "name".json']


def test_dest_copies_into_another_folder_and_leaves_the_readme(repos):
    """A study over several sessions: the records go to results/proxy-next; results/proxy and the README
    are untouched."""
    main, repro = repos
    src = repro / "results" / "proxy"
    row = record(src, "camvid-stego-seed0-aaa", 20.0)
    (src / "table1.csv").write_text(HEADER + row)
    readme = (main / "README.md").read_bytes()
    msg = commit_results.one_round(repro, "proxy", "results/proxy-next")
    assert msg == "proxy reproduction (into results/proxy-next): 1 run records (3 files new or changed)", msg
    assert (main / "results/proxy-next/runs/camvid-stego-seed0-aaa/eval.json").is_file()
    assert not (main / "results/proxy").exists() and (main / "README.md").read_bytes() == readme
    shown = subprocess.run(["git", "show", "--name-only", "--format=", "HEAD"], cwd=main, capture_output=True,
                           text=True, check=True).stdout.split()
    assert sorted(shown) == sorted(f"results/proxy-next/{p}" for p in (
        "table1.csv", "runs/camvid-stego-seed0-aaa/eval.json", "runs/camvid-stego-seed0-aaa/provenance.json"))
    assert commit_results.one_round(repro, "proxy", "results/proxy-next") == "no new results"


def test_a_study_whose_first_phase_has_no_run_record_yet_commits_its_tuning(repos):
    """The study starts with the tuning notebook: finished arms' tune.json files and an empty runs/ folder.
    They are committed as they finish (a later session reuses them), not held back because the copy,
    made of files only, had no runs/ folder."""
    main, repro = repos
    src = repro / "results" / "proxy"
    (src / "runs").mkdir(parents=True)
    (src / "tuning" / "camvid-M1").mkdir(parents=True)
    (src / "tuning" / "camvid-M1" / "tune.json").write_text(json.dumps({"choice": {"level": 0.8}}))
    msg = commit_results.one_round(repro, "proxy", "results/proxy-next")
    assert msg == "proxy reproduction (into results/proxy-next): 0 run records (1 files new or changed)", msg
    shown = subprocess.run(["git", "show", "--name-only", "--format=", "HEAD"], cwd=main, capture_output=True,
                           text=True, check=True).stdout.split()
    assert shown == ["results/proxy-next/tuning/camvid-M1/tune.json"]
