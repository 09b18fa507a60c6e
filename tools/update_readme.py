"""Write the generated results pages from the committed proxy results (nothing in them is typed):

* ``results/proxy/README.md``, whole: the state of the reproduction (computed from ``reproduce.json``,
  the records and ``tools/budget.py``), the verdicts (``claims.md`` after a summary counted from
  ``claims.csv``), every table and figure with its CSV and provenance, where the time goes, the
  benchmarks;
* in ``README.md``, between ``<!-- headline-start -->`` / ``<!-- headline-end -->``: the verdict summary
  and the headline table (Table 1 on the proxy beside the paper's numbers, with the EQUSS - STEGO
  difference on both), computed from ``table1.csv`` and ``equss.paper.quoted``.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "results" / "proxy"
ORDER = [("table1", "Table 1"), ("table2", "Table 2"), ("table3", "Table 3"), ("fig2", "Figure 2"),
         ("fig4", "Figure 4"), ("fig5", "Figure 5"), ("fig6", "Figure 6"), ("learning_curves", "Learning curves")]
CLAIMS_NOTE = ("*Not filled yet: the verdicts appear here when the proxy results are regenerated with seeds\n"
               "(`make reproduce SCALE=proxy`, then `python tools/update_readme.py`). The earlier\n"
               "single-seed, hand-typed summary was removed because a claim needs seeds to be decided.*")


def status() -> str:
    """How far the proxy reproduction is: run records, their commit, the measured wall time so far."""
    import json

    import budget  # tools/budget.py, beside this file

    recs = sorted((RES / "runs").glob("*/")) if (RES / "runs").is_dir() else []
    commits = set()
    for r in recs:
        prov = r / "provenance.json"
        if prov.exists():
            commits.add(json.loads(prov.read_text()).get("git_commit", "?")[:12])
    line = f"*Run records in `results/proxy/runs/`: {len(recs)}"
    if commits:
        line += f", from commit {', '.join(sorted(commits))}"
    rep = RES / "reproduce.json"
    if rep.exists():
        doc = json.loads(rep.read_text())
        line += (f"; `make reproduce` so far: {budget.wall_s(doc) / 3600:.1f} h in {len(doc.get('segments', []))} segment(s), "
                 f"{'finished' if doc.get('finished') else 'not finished'}, peak RSS {doc['peak_rss_mib']:.0f} MiB")
    return line + ".*\n"


def status_paragraph() -> str:
    """The state of the proxy reproduction in words, computed from ``reproduce.json`` (tools/measure.py),
    the run records and tools/budget.py's attribution: in progress, or finished with its cost and
    what bounds it."""
    import json

    import budget  # tools/budget.py, beside this file

    rep = RES / "reproduce.json"
    doc = json.loads(rep.read_text()) if rep.exists() else {}
    items = budget.attribute(RES) if any(RES.glob("*.csv")) else []
    trainings, evals = sum(i["trainings"] for i in items), sum(i["evals"] for i in items)
    commit = str(doc.get("git_commit", "?"))[:7]
    how = ("it runs in segments across working sessions: each run's record is committed to "
           "`results/proxy/runs/` as it finishes, the run cache resumes where a segment stopped, and "
           "`results/proxy/reproduce.json` sums the segments' wall time")
    if not doc.get("finished"):
        return (f"**Status: the proxy reproduction is in progress.** `make reproduce SCALE=proxy` is "
                f"regenerating everything from an empty cache at one commit (`{commit}`); so far "
                f"{trainings} trainings and {evals} evaluations are in the tables below, "
                f"{budget.wall_s(doc) / 3600:.1f} h of wall time. On this 2-core CPU the whole takes about a "
                f"day, so {how}. A table or figure appears below when its notebook completes.")
    paused = budget.paused_s(RES)
    running_h = (budget.wall_s(doc) - paused) / 3600
    top = sorted(items, key=lambda i: -(i["train_s"] + i["eval_s"]))[:3]
    costs = ", ".join(f"{i['name']} {(i['train_s'] + i['eval_s']) / 3600:.1f} h ({i['trainings']} trainings, "
                      f"{i['evals']} evaluations)" for i in top)
    train_h = sum(i["train_s"] for i in items) / 3600
    eval_h = sum(i["eval_s"] for i in items) / 3600
    verdict = f"the trainings take {train_h:.1f} h and the evaluations {eval_h:.1f} h of it"
    return (f"**The proxy reproduction is complete.** `make reproduce SCALE=proxy` regenerated every table "
            f"and figure below from an empty cache at one commit (`{commit}`, code fingerprint "
            f"`{doc.get('code_fingerprint', '?')}`): {trainings} trainings and {evals} evaluations in "
            f"{running_h:.1f} h of running time on this 2-core CPU, {verdict} ({len(doc.get('segments', []))} "
            f"segments across working sessions, peak RSS {float(doc.get('peak_rss_mib', 0)):.0f} MiB). "
            f"The largest costs: {costs} (\"Where the time goes\" below).")


def section(prefix: str = "") -> str:
    """Every table and figure (links relative to ``prefix``: "" inside results/proxy/)."""
    out = [status()]
    for name, title in ORDER:
        md, png = RES / f"{name}.md", RES / f"{name}.png"
        if not (md.exists() or png.exists()):
            out.append(f"**{title}**: not produced yet (`make reproduce-{name.replace('_', '-')}`).\n")
            continue
        links = [f"[{name}.csv]({prefix}{name}.csv)"] if (RES / f"{name}.csv").exists() else []
        links += [f"[provenance]({prefix}{name}.provenance.json)", f"[notebook]({prefix}notebooks/)"]
        out.append(f"**{title}** — " + ", ".join(links) + "\n")
        if md.exists():
            out.append(md.read_text().strip() + "\n")
        if png.exists():
            out.append(f"![{title}]({prefix}{name}.png)\n")
    if any(RES.glob("*.csv")):
        import budget  # tools/budget.py, beside this file

        out.append("**Where the time goes** (`python tools/budget.py`: each training and evaluation "
                   "from its record, charged to the first artefact that uses it)\n")
        out.append(budget.report(RES) + "\n")
    bench = ROOT / "results" / "bench" / "README.md"
    if bench.exists():
        out.append("**Benchmarks** ([results/bench](../bench/))\n")
        out.append(bench.read_text().strip().replace("# Benchmarks", "#### Benchmarks", 1) + "\n")
    return "\n".join(out)


def verdict_summary(csv_path: Path) -> str:
    """A plain summary of claims.csv (computed from the verdicts; nothing typed): one bullet per
    verdict with its count; the claims that hold, are equivalent or are contradicted are named, the
    inconclusive ones are counted per table or figure (the table below names each); when the CSV has
    the power columns, one bullet counts the claims whose power to see the stated effect (the
    paper's own, or an equivalence margin) is below 80 % at these runs."""
    import csv
    import math
    from collections import Counter

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["verdict"], []).append(r)
    known = ("holds", "equivalent", "contradicted", "inconclusive")
    lines = []
    for verdict in (*known, *sorted(set(groups) - set(known))):
        members = groups.get(verdict, [])
        if not members:
            continue
        head = f"- **{len(members)} {'hold' if verdict == 'holds' and len(members) > 1 else verdict}**"
        name = lambda r: f"{r['claim']}" + (f", {r['metric']}" if r.get("metric") else "") + f" ({r['source']})"  # noqa: E731
        if verdict == "inconclusive":
            where = Counter(r["source"] for r in members)
            why = ("not significant after the correction at these runs: no evidence either way"
                   if "p_holm" in members[0] else "the 95 % interval includes zero at these seeds")
            lines.append(f"{head} ({why}; " + ", ".join(f"{src}: {n}" for src, n in where.items()) + ")")
        else:
            lines.append(f"{head}: " + "; ".join(name(r) for r in members))
    if rows and "power" in rows[0]:
        def num(v):
            try:
                return float(v)
            except (TypeError, ValueError):
                return math.nan

        powered = [num(r["power"]) for r in rows if math.isfinite(num(r["power"]))]
        if powered:
            low = sum(p < 0.8 for p in powered)
            lines.append(f"- **power**: for {low} of the {len(powered)} claims with a stated effect (the paper's own, "
                         "or the equivalence margin), these runs had less than 80 % power to detect it at the "
                         "family's level (power, MDE and seeds needed in the table below)")
    family = ("one Holm-Bonferroni family; a verdict needs the adjusted p below 0.05"
              if rows and "p_holm" in rows[0] else "")
    return (f"On the proxy, of {len(rows)} claims tested" + (f" ({family})" if family else "") + ":\n\n"
            + "\n".join(lines))


def claims(prefix: str = "") -> str:
    """The computed verdicts (results/proxy/claims.md) after a plain summary of them, or a note while
    there are none."""
    md = RES / "claims.md"
    if not md.exists():
        return CLAIMS_NOTE
    head = verdict_summary(RES / "claims.csv") + "\n\n" if (RES / "claims.csv").exists() else ""
    return (head + "Computed from the run records and per-seed tables by the `claims` notebook "
            f"([claims.csv]({prefix}claims.csv), every column; "
            f"[executed notebook]({prefix}notebooks/claims.ipynb), coloured):\n\n" + md.read_text().strip())


METRICS = (("unsup_acc", "unsupervised Acc"), ("unsup_miou", "unsupervised mIoU"), ("linear_acc", "linear Acc"),
           ("linear_miou", "linear mIoU"))


def headline() -> str:
    """Table 1 on the proxy (no CRF, mean over seeds) beside the paper's (quoted), EQUSS - STEGO on both,
    after the verdict summary; a note while there is no Table 1."""
    import csv
    import statistics
    import sys

    sys.path.insert(0, str(ROOT))
    from equss.paper.quoted import TABLE1

    summary = verdict_summary(RES / "claims.csv") + "\n\n" if (RES / "claims.csv").exists() else ""
    path = RES / "table1.csv"
    if not path.exists():
        return summary + "*Table 1 not produced yet (`equss reproduce table1`).*"
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "measured" and r["crf"] == "False"]
    mean = {}
    for method in ("STEGO", "EQUSS"):
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            return summary + f"*Table 1 has no {method} rows without CRF yet (`equss reproduce table1`).*"
        mean[method] = {k: statistics.fmean(float(r[k]) for r in mine) for k, _ in METRICS}
        mean[method]["n"] = len(mine)
    lines = ["| metric | proxy STEGO | proxy EQUSS | proxy EQUSS − STEGO | paper STEGO | paper EQUSS | "
             "paper EQUSS − STEGO |", "|---|---|---|---|---|---|---|"]
    for i, (key, name) in enumerate(METRICS):
        s, e = mean["STEGO"][key], mean["EQUSS"][key]
        ps, pe = TABLE1["STEGO"][i], TABLE1["EQUSS"][i]
        lines.append(f"| {name} | {s:.1f} | {e:.1f} | {e - s:+.1f} | {ps:.1f} | {pe:.1f} | {pe - ps:+.1f} |")
    n = min(mean["STEGO"]["n"], mean["EQUSS"]["n"])
    summary = summary.replace("in the table below", "in [the proxy results](results/proxy/README.md)")
    return (summary + f"Table 1: the proxy (CamVid, offline DINOv2 ViT-S/14, mean of {n} seeds, without CRF) beside "
            "the paper (CocoStuff-27, DINO ViT-S/8; quoted). The proxy answers the paper's questions on other "
            "data and another backbone: compare the differences, not the levels.\n\n" + "\n".join(lines))


def results_page() -> str:
    """results/proxy/README.md: everything the proxy reproduction produced, generated."""
    return "\n".join([
        "# Proxy results\n",
        "*Generated by `tools/update_readme.py` from the committed results in this folder; nothing here is "
        "typed. The run records behind every number are in [runs/](runs/); `python -m equss.paper.trace "
        "results/proxy` rebuilds every table, its Markdown and the claims from them.*\n",
        status_paragraph() + "\n",
        "## The paper's claims, decided by the measurements\n",
        claims() + "\n",
        "## Tables and figures\n",
        section() + "\n",
    ])


def replace_block(text: str, start: str, end: str, body: str) -> str:
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + body + "\n" + text[j:]


def main():
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = replace_block(text, "<!-- headline-start -->", "<!-- headline-end -->", headline())
    readme.write_text(text)
    page = RES / "README.md"
    page.write_text(results_page())
    print("updated", readme, "and", page)


if __name__ == "__main__":
    main()
