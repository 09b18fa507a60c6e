"""Copy the committed proxy results (results/proxy/*.md, figures, benchmarks) into README.md
between the ``<!-- results-start -->`` / ``<!-- results-end -->`` markers.

Only numbers that exist in results/ (each with its provenance JSON beside it) are copied;
the interpretation paragraph lives in README.md itself, above the markers.  The verdicts
(results/proxy/claims.md, written by the ``claims`` notebook) go between
``<!-- claims-start -->`` / ``<!-- claims-end -->`` at the head of the Results section.
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
        line += (f"; `make reproduce` so far: {doc['wall_h']:.1f} h in {len(doc.get('segments', []))} segment(s), "
                 f"{'finished' if doc.get('finished') else 'not finished'}, peak RSS {doc['peak_rss_mib']:.0f} MiB")
    return line + ".*\n"


def section() -> str:
    out = [status()]
    for name, title in ORDER:
        md, png = RES / f"{name}.md", RES / f"{name}.png"
        if not (md.exists() or png.exists()):
            out.append(f"**{title}**: not produced yet (`make reproduce-{name.replace('_', '-')}`).\n")
            continue
        links = [f"[{name}.csv](results/proxy/{name}.csv)"] if (RES / f"{name}.csv").exists() else []
        links += [f"[provenance](results/proxy/{name}.provenance.json)", "[notebook](results/proxy/notebooks/)"]
        out.append(f"**{title}** — " + ", ".join(links) + "\n")
        if md.exists():
            out.append(md.read_text().strip() + "\n")
        if png.exists():
            out.append(f"![{title}](results/proxy/{name}.png)\n")
    if any(RES.glob("*.csv")):
        import budget  # tools/budget.py, beside this file

        out.append("**Where the time goes** (`python tools/budget.py`: each training and evaluation "
                   "from its record, charged to the first artefact that uses it)\n")
        out.append(budget.report(RES) + "\n")
    bench = ROOT / "results" / "bench" / "README.md"
    if bench.exists():
        out.append("**Benchmarks** ([results/bench](results/bench/))\n")
        out.append(bench.read_text().strip() + "\n")
    return "\n".join(out)


def verdict_summary(csv_path: Path) -> str:
    """One plain paragraph from claims.csv: how many claims hold, are contradicted, stay inconclusive,
    and which (computed from the verdicts; nothing typed)."""
    import csv

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r["verdict"], []).append(f"{r['claim']} ({r['source']})")
    parts = []
    for verdict in ("holds", "contradicted", "inconclusive"):
        names = groups.pop(verdict, [])
        if names:
            parts.append(f"**{len(names)} {verdict}**: " + "; ".join(names))
    parts += [f"**{len(v)} {k}**: " + "; ".join(v) for k, v in groups.items()]
    return f"On the proxy, of {len(rows)} claims tested: " + ". ".join(parts) + "."


def claims() -> str:
    """The computed verdicts (results/proxy/claims.md) after a plain summary of them, or a note while
    there are none."""
    md = RES / "claims.md"
    if not md.exists():
        return CLAIMS_NOTE
    head = verdict_summary(RES / "claims.csv") + "\n\n" if (RES / "claims.csv").exists() else ""
    return (head + "Computed from the per-seed tables by the `claims` notebook "
            "([claims.csv](results/proxy/claims.csv)):\n\n" + md.read_text().strip())


def replace_block(text: str, start: str, end: str, body: str) -> str:
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + body + "\n" + text[j:]


def main():
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = replace_block(text, "<!-- claims-start -->", "<!-- claims-end -->", claims())
    text = replace_block(text, "<!-- results-start -->", "<!-- results-end -->", section())
    readme.write_text(text)
    print("updated", readme)


if __name__ == "__main__":
    main()
