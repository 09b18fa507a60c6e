"""Copy the committed proxy results (results/proxy/*.md, figures, benchmarks) into README.md
between the ``<!-- results-start -->`` / ``<!-- results-end -->`` markers.

Only numbers that exist in results/ (each with its provenance JSON beside it) are copied;
the interpretation paragraph lives in README.md itself, above the markers.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "results" / "proxy"
ORDER = [("table1", "Table 1"), ("table2", "Table 2"), ("table3", "Table 3"), ("fig2", "Figure 2"),
         ("fig4", "Figure 4"), ("fig5", "Figure 5"), ("fig6", "Figure 6")]


def section() -> str:
    out = []
    for name, title in ORDER:
        md, png = RES / f"{name}.md", RES / f"{name}.png"
        if not (md.exists() or png.exists()):
            out.append(f"**{title}**: not produced yet (`make reproduce-{name}`).\n")
            continue
        links = [f"[{name}.csv](results/proxy/{name}.csv)"] if (RES / f"{name}.csv").exists() else []
        links += [f"[provenance](results/proxy/{name}.provenance.json)", "[notebook](results/proxy/notebooks/)"]
        out.append(f"**{title}** — " + ", ".join(links) + "\n")
        if md.exists():
            out.append(md.read_text().strip() + "\n")
        if png.exists():
            out.append(f"![{title}](results/proxy/{name}.png)\n")
    bench = ROOT / "results" / "bench" / "README.md"
    if bench.exists():
        out.append("**Benchmarks** ([results/bench](results/bench/))\n")
        out.append(bench.read_text().strip() + "\n")
    return "\n".join(out)


def main():
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- results-start -->", "<!-- results-end -->"
    i, j = text.index(start) + len(start), text.index(end)
    readme.write_text(text[:i] + "\n" + section() + "\n" + text[j:])
    print("updated", readme)


if __name__ == "__main__":
    main()
