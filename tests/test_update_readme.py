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
    assert text.startswith("On the proxy, of 4 claims tested:\n\n")
    assert "- **2 hold**: EQUSS > STEGO (unsup. mIoU) (Table 1); M>1 beats M=1 (Fig. 6)" in text
    assert "- **1 contradicted**: EQUSS > STEGO (linear mIoU) (Table 1)" in text
    assert "- **1 inconclusive** (" in text and text.endswith("Table 3: 1)")
    assert text.index("hold") < text.index("contradicted") < text.index("inconclusive")
    assert "Q3 best" not in text  # the inconclusive ones are counted, the table names them


def test_verdict_summary_of_the_holm_family(tmp_path):
    """claims.csv as equss.paper.claims writes it: metric, p_holm and power columns, an equivalent verdict."""
    from equss.paper.claims import Verdict

    rows = [("EQUSS > STEGO", "Table 1", "linear mIoU", "contradicted", 0.95),
            ("EQUSS > STEGO", "Table 1", "unsup. mIoU", "inconclusive", 0.14),
            ("does not fall", "Fig. 2", "slope", "equivalent", ""),
            ("fewer bits", "Fig. 4a", "fraction", "holds", ""),
            ("Q3 best", "Table 3", "linear mIoU", "inconclusive", 0.5)]
    with open(tmp_path / "claims.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(Verdict.COLUMNS))
        w.writeheader()
        for c, s, m, v, pw in rows:
            w.writerow({"claim": c, "source": s, "metric": m, "verdict": v, "power": pw, "p": 0.01, "p_holm": 0.2})
    text = update_readme.verdict_summary(tmp_path / "claims.csv")
    assert text.startswith("On the proxy, of 5 claims tested (one Holm-Bonferroni family; a verdict needs the "
                           "adjusted p below 0.05):\n\n")
    assert "- **1 holds**: fewer bits, fraction (Fig. 4a)" in text
    assert "- **1 equivalent**: does not fall, slope (Fig. 2)" in text
    assert "- **1 contradicted**: EQUSS > STEGO, linear mIoU (Table 1)" in text
    assert "- **2 inconclusive** (not significant after the correction at these runs: no evidence either way; " \
           "Table 1: 1, Table 3: 1)" in text
    assert ("- **power**: for 2 of the 3 claims with a stated effect (the paper's own, or the equivalence margin)"
            in text)
    assert text.index("holds") < text.index("equivalent") < text.index("contradicted") < text.index("inconclusive")


def test_claims_block_leads_with_the_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(update_readme, "RES", tmp_path)
    assert update_readme.claims() == update_readme.CLAIMS_NOTE  # nothing decided yet
    (tmp_path / "claims.md").write_text("| claim | verdict |\n|---|---|\n| Q3 best | **holds** |\n")
    with open(tmp_path / "claims.csv", "w", newline="") as fh:
        fh.write("claim,source,verdict\nQ3 best,Table 3,holds\n")
    block = update_readme.claims()
    assert block.startswith("On the proxy, of 1 claims tested:\n\n- **1 holds**: Q3 best (Table 3)\n")
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


def test_status_paragraph_is_computed(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(update_readme, "RES", tmp_path)
    for name, train_s, eval_s in (("r1", 3 * 3600, 1800), ("r2", 3600, 900)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "provenance.json").write_text(json.dumps({"wall_s": train_s}))
        (run / "eval.json").write_text(json.dumps({"provenance": {"wall_s": eval_s}}))
    (tmp_path / "fig6.csv").write_text("method,run,eval\nEQUSS,r1,eval.json\n")
    (tmp_path / "table1.csv").write_text("method,run,eval\nEQUSS,r2,eval.json\n")
    rep = {"git_commit": "53114b311b35", "code_fingerprint": "71e29575cf00", "finished": False, "wall_s": 6 * 3600,
           "wall_h": 6.0, "peak_rss_mib": 2026.9, "segments": [{}, {}, {}]}
    (tmp_path / "reproduce.json").write_text(json.dumps(rep))
    text = update_readme.status_paragraph()
    assert text.startswith("**Status: the proxy reproduction is in progress.**")
    assert "(`53114b3`); so far 2 trainings and 2 evaluations are in the tables below, 6.0 h of wall time" in text

    (tmp_path / "reproduce.json").write_text(json.dumps({**rep, "finished": True}))
    (tmp_path / "reproduce_pauses.log").write_text("2026-11-29T06:00:00Z SIGSTOP\n2026-11-29T06:30:00Z SIGCONT\n")
    text = update_readme.status_paragraph()
    assert text.startswith("**The proxy reproduction is complete.**")
    assert "2 trainings and 2 evaluations in 5.5 h of running time" in text  # 6 h less the 30 min pause
    assert "the trainings take 4.0 h and the evaluations 0.8 h of it" in text and "budget" not in text
    assert "3 segments across working sessions, peak RSS 2027 MiB" in text
    assert "The largest costs: fig6 3.5 h (1 trainings, 1 evaluations), table1 1.2 h" in text


def test_headline_is_table1_beside_the_paper(tmp_path, monkeypatch):
    """The README's headline table: proxy means without CRF from table1.csv (recomputed here by hand),
    the paper's quoted numbers, and EQUSS - STEGO on both."""
    import csv

    from equss.paper.quoted import TABLE1

    monkeypatch.setattr(update_readme, "RES", tmp_path)
    assert "not produced yet" in update_readme.headline()
    cols = ["method", "dataset", "seed", "crf", "run", "eval", "unsup_acc", "unsup_miou", "linear_acc", "linear_miou",
            "source"]
    rows = [("STEGO", 0, "False", 50, 20, 80, 30), ("STEGO", 1, "False", 52, 22, 78, 34), ("EQUSS", 0, "False", 60, 21, 70, 28),
            ("EQUSS", 1, "False", 58, 25, 72, 30), ("EQUSS", 0, "True", 99, 99, 99, 99)]
    with open(tmp_path / "table1.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for m, seed, crf, *v in rows:
            w.writerow([m, "camvid", seed, crf, "r", "eval.json", *v, "measured"])
        w.writerow(["EQUSS [paper]", "", "", "", "", "", 1, 1, 1, 1, "quoted (paper)"])
    text = update_readme.headline()
    assert "mean of 2 seeds, without CRF" in text
    ps, pe = TABLE1["STEGO"], TABLE1["EQUSS"]
    assert f"| unsupervised Acc | 51.0 | 59.0 | +8.0 | {ps[0]:.1f} | {pe[0]:.1f} | {pe[0] - ps[0]:+.1f} |" in text
    assert f"| linear mIoU | 32.0 | 29.0 | -3.0 | {ps[3]:.1f} | {pe[3]:.1f} | {pe[3] - ps[3]:+.1f} |" in text


def test_readme_is_a_front_door():
    """README within ~12 KB with citation and contents; the generated results live in results/proxy/README.md."""
    readme = (update_readme.ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    assert "@inproceedings{" in readme and "**Contents:**" in readme and "arxiv.org/abs/2312.07342" in readme
    assert "issue" not in readme.lower() and "budget" not in readme.lower().replace("tools/budget.py", "")
    assert "<!-- headline-start -->" in readme and "(results/proxy/README.md)" in readme
