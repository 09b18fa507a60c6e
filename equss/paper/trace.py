"""Traceability of a results folder: every committed table is what the code makes of its run records.

``check(results_dir)`` returns the problems found (an empty list when all is well):

* all records name one git commit and one code fingerprint (training provenance), and hold
  no checkpoints;
* every table CSV with a rule in :mod:`equss.paper.rebuild` (``claims.csv`` excepted) is
  rebuilt from the records and compared in full: each row's label, dataset, seed, ``crf``,
  source and numbers, the row set (no row twice, every configuration with one row per
  seed, the quoted rows exactly those of :mod:`equss.paper.quoted`), the columns, and its
  Markdown regenerated from the CSV; ``claims.csv`` / ``claims.md`` are recomputed from
  the tables (:func:`equss.paper.rebuild.check_claims`);
* a table CSV without a rule is reported, and its numbers are checked as by
  :func:`check_numbers`.

``check_numbers(results_dir)`` is the number-level check alone (records, and each number of
every table against its record): every measured row names a record ``runs/<run>/`` that
exists and the file in it (``eval`` column: ``eval.json``, ``eval_crf.json``, ``eval_r224.json``,
``baseline.json``, ``posthoc.json``, ``eval_step_<N>.json``, ``fig4.json``, ...); every numeric column of a
measured row is either a measurement listed in :data:`COLUMNS` (its value must equal the one
in the record, to 1e-9; a blank one is reported; a post-hoc row's from its ``probe``'s part of
``posthoc.json``), what its evaluation file says of how it was measured (:data:`MEASURED_AT`: the
``resolution``), or a fact of the configuration listed in
:data:`FACTS` (seed, head width, M, K: compared with the record's ``config.yaml``); any other
numeric column is reported as untraced.  The text columns ``probe`` and ``recipe`` are compared
by the rebuild (:mod:`equss.paper.rebuild`).

``python -m equss.paper.trace results/proxy`` prints the problems of :func:`check` (exit 1 when any).
"""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from equss.paper import rebuild
from equss.paper.tables import MEASURED, METRIC_KEYS, PROBE_PARTS, resolution_of

DERIVED = {"claims.csv"}  # computed from the tables, not from records


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def _metric(group: str, key: str):
    """A metric of the row's file: ``doc[group(+_crf)][key]``; a post-hoc row (``probe`` post-hoc /
    post-hoc quantised) of a post-hoc file reads its part (``doc[part][group]``, or the per-image
    group ``<part>_<group>`` of :mod:`equss.pipeline.posthoc` when ``doc`` is keyed by those)."""
    def get(doc, row):
        g = group + ("_crf" if _truthy(row.get("crf", "")) else "")
        part = PROBE_PARTS.get(row.get("probe") or "")
        if part and g not in doc:  # not a baseline (its post-hoc numbers are at the top)
            return (doc[part][g] if part in doc else doc[f"{part}_{g}"])[key]
        return doc[g][key]
    return get


def _log_val(key: str):
    return lambda doc, row: doc[int(float(row["step"]))][key]


# column -> (record file, or None for the row's ``eval`` file; value getter(doc, row))
COLUMNS = {col: (None, _metric(g, k)) for col, (g, k) in METRIC_KEYS.items()}
COLUMNS.update({
    "iou": ("eval.json", lambda doc, row: doc["cluster"]["per_class_iou"][int(row["class_index"])]),
    "entropy_bits": (None, lambda doc, row: doc["entropy_bits"][str(int(row["class_index"]))]),
    "distance": (None, lambda doc, row: doc["distance"][int(row["class_a_index"])][int(row["class_b_index"])]),
    "val_unsup_miou": ("log.jsonl", _log_val("cluster_mIoU")),
    "val_unsup_acc": ("log.jsonl", _log_val("cluster_Accuracy")),
    "val_linear_miou": ("log.jsonl", _log_val("linear_mIoU")),
    "val_linear_acc": ("log.jsonl", _log_val("linear_Accuracy")),
})
# column -> what the row's evaluation file says of how it was measured (its provenance), compared too
MEASURED_AT = {"resolution": resolution_of}
# column -> path in the record's resolved config (None: an index, not compared)
FACTS = {"seed": ("train", "seed"), "dim": ("model", "head_dim"), "M": ("model", "num_codebooks"),
         "K": ("model", "codebook_size"), "step": None, "class_index": None, "class_a_index": None,
         "class_b_index": None}


def _number(text) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _same(a, b) -> bool:
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-9


def _load(path: Path):
    if path.suffix == ".jsonl":
        out = {}
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "val" in entry:
                out[int(entry["step"])] = entry["val"]
        return out
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text())
    return json.loads(path.read_text())


def record_provenance(record: Path) -> dict | None:
    """The training provenance of a record (``provenance.json``, or a baseline's own)."""
    if (record / "provenance.json").is_file():
        return json.loads((record / "provenance.json").read_text())
    if (record / "baseline.json").is_file():
        return json.loads((record / "baseline.json").read_text()).get("provenance")
    return None


def _config(record: Path) -> dict | None:
    if (record / "config.yaml").is_file():
        return _load(record / "config.yaml")
    prov = record_provenance(record) or {}
    return {"train": {"seed": prov["seed"]}} if "seed" in prov else None


def check_table(path: Path, runs: Path) -> list[str]:
    problems: list[str] = []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return [f"{path.name}: empty"]
    if "run" not in rows[0]:
        return [f"{path.name}: no run column (every table row must name its run record)"]
    cache: dict[Path, object] = {}

    def doc(p: Path):
        if p not in cache:
            cache[p] = _load(p)
        return cache[p]

    for i, row in enumerate(rows, start=2):
        if row.get("source", MEASURED) != MEASURED:
            continue
        where = f"{path.name}:{i}"
        if not row.get("run"):
            problems.append(f"{where}: measured row without a run")
            continue
        record = runs / row["run"]
        if not record.is_dir():
            problems.append(f"{where}: no record runs/{row['run']}")
            continue
        cfg = _config(record)
        for col, text in row.items():
            value = _number(text)
            if value is None and not text and col in COLUMNS:
                problems.append(f"{where}: {col} is blank in a measured row")
                continue
            if value is None or col in ("run", "eval", "source", "crf"):
                continue
            if col in MEASURED_AT:
                f = record / (row.get("eval") or "eval.json")
                got = MEASURED_AT[col](doc(f)) if f.is_file() else None
                if got is None or not _same(got, value):
                    problems.append(f"{where}: {col} = {text} but runs/{row['run']}/{f.name} says {got}")
                continue
            if col in FACTS:
                if FACTS[col] is not None and cfg is not None:
                    sec, key = FACTS[col]
                    if sec in cfg and key in cfg[sec] and not _same(cfg[sec][key], value):
                        problems.append(f"{where}: {col} = {text} but runs/{row['run']} has {sec}.{key} = {cfg[sec][key]}")
                continue
            if col not in COLUMNS:
                problems.append(f"{where}: column {col!r} = {text} is not traced to a record (add it to trace.COLUMNS)")
                continue
            fname, get = COLUMNS[col]
            fname = fname or row.get("eval") or "eval.json"
            f = record / fname
            if not f.is_file():
                problems.append(f"{where}: {col}: no runs/{row['run']}/{fname}")
                continue
            try:
                expected = get(doc(f), row)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                problems.append(f"{where}: {col}: not found in runs/{row['run']}/{fname} ({exc!r})")
                continue
            if not _same(expected, value):
                problems.append(f"{where}: {col} = {text} but runs/{row['run']}/{fname} says {expected}")
    return problems


def check_records(runs: Path) -> list[str]:
    """All records name one git commit and one code fingerprint."""
    problems, commits, prints = [], {}, {}
    for record in sorted(p for p in runs.iterdir() if p.is_dir()):
        prov = record_provenance(record)
        if prov is None:
            problems.append(f"runs/{record.name}: no provenance")
            continue
        commits.setdefault(prov.get("git_commit"), []).append(record.name)
        prints.setdefault(prov.get("code_fingerprint"), []).append(record.name)
        for f in record.iterdir():
            if f.suffix == ".pt":
                problems.append(f"runs/{record.name}/{f.name}: checkpoints are not part of a record")
    for what, seen in (("git commits", commits), ("code fingerprints", prints)):
        if len(seen) > 1:
            problems.append(f"records name {len(seen)} {what}: " + "; ".join(
                f"{k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}" for k, v in seen.items()))
    return problems


def tables(results: Path) -> list[Path]:
    return sorted(p for p in Path(results).glob("*.csv") if p.name not in DERIVED)


def check_numbers(results) -> list[str]:
    """The records, and every number of every table against its record (see the module docstring)."""
    results = Path(results)
    runs = results / "runs"
    if not runs.is_dir():
        return [f"{results}: no runs/ folder of run records"]
    problems = check_records(runs)
    for path in tables(results):
        problems += check_table(path, runs)
    return problems


def check(results) -> list[str]:
    """The records, every table rebuilt from them (:mod:`equss.paper.rebuild`), and the claims."""
    results = Path(results)
    runs = results / "runs"
    if not runs.is_dir():
        return [f"{results}: no runs/ folder of run records"]
    problems = check_records(runs)
    records = rebuild.Records(runs)
    for path in tables(results):
        if path.stem in rebuild.RULES:
            problems += rebuild.check_table(path, runs, records)
        else:
            problems += check_table(path, runs)
            problems.append(f"{path.name}: no rule to rebuild it from the records (equss.paper.rebuild.RULES)")
    return problems + rebuild.check_claims(results)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    problems = check(args[0] if args else "results/proxy")
    print("\n".join(problems) if problems else "traceable: every table, its Markdown and the claims are what the code makes of the run records")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
