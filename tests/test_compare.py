"""A user's reproduction beside the committed results (equss.paper.compare, printed by `equss reproduce`),
on copies of the committed proxy Table 1 with known changes."""
from __future__ import annotations

import csv
import shutil
import statistics
from pathlib import Path

import pytest

from equss.paper.compare import against_committed

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "results" / "proxy" / "table1.csv"
pytestmark = pytest.mark.skipif(not TABLE.is_file(), reason="no committed proxy Table 1")


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, table: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)


def one_seed(seed: str = "0") -> list[dict]:
    return [r for r in rows(TABLE) if r["seed"] == seed or r["source"] != "measured"]


def line_for(lines, method, crf, metric):
    hits = [ln for ln in lines if ln.strip().startswith(method) and f"crf={crf}" in ln and f" {metric}:" in ln]
    assert len(hits) == 1, (method, crf, metric, lines)
    return hits[0]


def test_same_seed_is_identical_and_the_committed_spread_is_shown(tmp_path):
    mine = tmp_path / "local"
    write(mine / "table1.csv", one_seed("0"))
    lines = against_committed(mine, TABLE.parent, ["table1.csv"])
    ref = [float(r["unsup_miou"]) for r in rows(TABLE) if r["method"] == "EQUSS" and r["crf"] == "False"
           and r["source"] == "measured"]
    mine_v = next(float(r["unsup_miou"]) for r in one_seed("0") if r["method"] == "EQUSS" and r["crf"] == "False")
    line = line_for(lines, "EQUSS", "False", "unsup_miou")
    assert f"{mine_v:.2f} (n=1) vs committed {statistics.fmean(ref):.2f} ± {statistics.stdev(ref):.2f} (n=3)" in line
    assert f"{mine_v - statistics.fmean(ref):+.2f}, identical" in line
    assert "not re-run" not in " ".join(lines)


def test_a_value_outside_the_committed_seeds_is_flagged(tmp_path):
    mine = tmp_path / "local"
    table = one_seed("1")
    ref = [float(r["linear_acc"]) for r in rows(TABLE) if r["method"] == "STEGO" and r["crf"] == "True"]
    for r in table:
        if r["method"] == "STEGO" and r["crf"] == "True":
            r["linear_acc"] = str(max(ref) + 5.0)
    write(mine / "table1.csv", table)
    lines = against_committed(mine, TABLE.parent, ["table1.csv"])
    assert "OUTSIDE the committed range" in line_for(lines, "STEGO", "True", "linear_acc")
    assert "identical" in line_for(lines, "STEGO", "True", "unsup_acc")


def test_tables_not_reproduced_are_not_re_run_and_never_compared_with_themselves(tmp_path):
    mine = tmp_path / "local"
    write(mine / "table1.csv", one_seed("2"))
    lines = against_committed(mine, TABLE.parent)
    assert lines[-1].startswith("not re-run: ") and "table2" in lines[-1] and "table1" not in lines[-1]
    assert against_committed(TABLE.parent, TABLE.parent)[0].endswith("nothing to compare with")
    copy = tmp_path / "copy"
    shutil.copytree(TABLE.parent, copy, ignore=shutil.ignore_patterns("runs", "notebooks", "tune_*"))
    assert all("identical" in ln or "not re-run" in ln or "numbers compared" in ln
               for ln in against_committed(copy, TABLE.parent, ["table1.csv"]))
