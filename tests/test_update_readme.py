"""tools/update_readme.py: the plain summary of the verdicts is counted from claims.csv."""
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import update_readme  # noqa: E402


def test_verdict_summary_counts_and_names_each_verdict(tmp_path):
    rows = [("EQUSS > STEGO (unsup. mIoU)", "Table 1", "holds"), ("Q3 best", "Table 3", "inconclusive"),
            ("EQUSS > STEGO (linear mIoU)", "Table 1", "contradicted"), ("M>1 beats M=1", "Fig. 6", "holds")]
    with open(tmp_path / "claims.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "source", "test", "estimate", "low", "high", "verdict", "n", "note"])
        w.writerows([(c, s, "welch", 1.0, 0.5, 1.5, v, "3", "") for c, s, v in rows])
    text = update_readme.verdict_summary(tmp_path / "claims.csv")
    assert text.startswith("On the proxy, of 4 claims tested: ")
    assert "**2 holds**: EQUSS > STEGO (unsup. mIoU) (Table 1); M>1 beats M=1 (Fig. 6)" in text
    assert "**1 contradicted**: EQUSS > STEGO (linear mIoU) (Table 1)" in text
    assert "**1 inconclusive**: Q3 best (Table 3)" in text
    assert text.index("holds") < text.index("contradicted") < text.index("inconclusive")


def test_claims_block_leads_with_the_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(update_readme, "RES", tmp_path)
    assert update_readme.claims() == update_readme.CLAIMS_NOTE  # nothing decided yet
    (tmp_path / "claims.md").write_text("| claim | verdict |\n|---|---|\n| Q3 best | **holds** |\n")
    with open(tmp_path / "claims.csv", "w", newline="") as fh:
        fh.write("claim,source,verdict\nQ3 best,Table 3,holds\n")
    block = update_readme.claims()
    assert block.startswith("On the proxy, of 1 claims tested: **1 holds**: Q3 best (Table 3).")
    assert block.rstrip().endswith("| Q3 best | **holds** |")


def test_results_section_carries_the_time_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(update_readme, "RES", tmp_path)
    assert "Where the time goes" not in update_readme.section()  # nothing measured yet
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "provenance.json").write_text('{"wall_s": 3600}')
    (run / "eval.json").write_text('{"provenance": {"wall_s": 1800}}')
    (tmp_path / "table1.csv").write_text("method,run,eval\nEQUSS,r1,eval.json\n")
    (tmp_path / "table1.md").write_text("| method |\n|---|\n| EQUSS |\n")
    text = update_readme.section()
    assert "**Where the time goes**" in text
    assert "| table1 | 1 | 1.00 | 1 | 0.50 | 1.50 |" in text
    assert text.index("**Table 1**") < text.index("**Where the time goes**")
