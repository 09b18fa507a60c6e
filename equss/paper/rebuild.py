"""Rebuild the committed tables, figure CSVs, their Markdown and the claims from the run records.

:func:`equss.paper.trace.check` calls :func:`check_table` for every table CSV that has a rule in
:data:`RULES`, and :func:`check_claims`; each returns the problems found (an empty list when
the file is what the code makes of the records).  A table CSV is compared in full:

* **measured rows**: each names a record (``run``) and a file in it (``eval``).  From these
  the row is rebuilt as its notebook builds it (:func:`equss.paper.tables.row`; Fig. 4's rows as
  :func:`equss.paper.figures.entropy_analysis` writes them): the method label from the
  record's preset (its config's ``name``; a ``baseline-`` record is the raw-feature
  baseline), dataset and seed from its config, ``crf`` from the evaluation file, the numbers
  from that file, the table's own columns (``table``, ``dim``, ``M``, ``K``, ``step``, ...)
  from the config or file name, ``source = measured``.  Every column is compared, numbers
  to 1e-9;
* **the row set**: no row twice; every configuration of the table present (Table 1: the raw
  features, STEGO, M1 and EQUSS, the trained ones without and with the CRF, with post-hoc probes
  and at the check resolution: :func:`table1_configurations`); each with exactly one
  row per seed of the table (``seeds`` in its ``.provenance.json``), all from records of
  one configuration; rows with and without the CRF from the same records;
* **how each row was measured** (issue 26): ``probe`` from the file (an evaluation: ``online``; the
  baseline: ``post-hoc``; ``posthoc.json``: one row per part), ``resolution`` from the evaluation's
  provenance, ``recipe`` from the record's config (:func:`equss.paper.tables.recipe_of`).  A table
  written before these columns (none in its header) is rebuilt without them (:func:`legacy_rule`);
* **quoted rows**: exactly the rows the notebook takes from :mod:`equss.paper.quoted`,
  with their values;
* **the Markdown**: ``<table>.md`` regenerated from the CSV with
  :func:`equss.paper.tables.markdown` (the learning curves: plus :func:`equss.paper.curves.write`'s
  chosen steps, whose ``learning_curves.json`` is compared too) and compared as text; only
  the caption line is taken from the file;
* **claims**: ``claims.csv`` and ``claims.md`` regenerated with
  :func:`equss.paper.claims.paper_claims` from the tables and compared field by field.

What a rule knows beyond the records are its notebook's static facts: the paper presets a
table runs, its labels (from :mod:`equss.paper.quoted` where the paper has the row), its
extra columns, its configurations, Markdown metrics and quoted rows.  A new table needs a
rule here (``trace.check`` reports a table CSV without one).
"""
from __future__ import annotations

import csv
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from equss.paper import quoted as paper
from equss.paper.runs import preset_for
from equss.paper.tables import MEASURED, METRICS, PROBE_PARTS, markdown, row as table_row

BASELINE = "DINO (raw features)"  # Table 1's raw-feature row (quoted.TABLE1's label)
METHODS = ("STEGO", "EQUSS")
TRAINED = ("STEGO", "M1", "EQUSS")  # Tables 1 and 2's trained arms (M1: STEGO's head on EQUSS's recipe, issue 26)
# tables.row's columns since issue 26 (how each row was measured); a table written before them has none
NEW_COLUMNS = ("probe", "resolution", "recipe")
FIG2_METHODS = ("supervised head", "STEGO head", "EQUSS (PQ)")
TOL = 1e-9


class Problem(Exception):
    """A row that cannot be rebuilt (its record or file is missing or does not belong)."""


# ---------------------------------------------------------------------------- records
def _read(path: Path):
    """A record file: JSON, ``config.yaml``, or ``log.jsonl`` as ``{step: validation dict}``."""
    if path.suffix == ".jsonl":
        lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
        return {int(e["step"]): e["val"] for e in lines if "val" in e}
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text())
    return json.loads(path.read_text())


# provenance fields that say where and when a baseline ran, not what it computed
VOLATILE = {"time_utc", "wall_s", "seed", "device", "host_platform", "cpu", "cpu_count", "python", "torch",
            "equss_version", "git_commit", "code_fingerprint", "threads", "executor"}


@dataclass
class Record:
    """One run record ``runs/<name>/`` as the rules see it."""
    name: str
    folder: Path
    preset: str       # from its name (camvid-equss); a baseline: the preset whose features it probes
    scale: str
    dataset: str
    seed: int
    baseline: bool
    config: dict      # the resolved config (a baseline: its provenance)
    docs: dict = field(default_factory=dict)

    @property
    def variant(self) -> str:
        """The preset without its dataset: ``equss``, ``stego``, ``M1``..."""
        return self.preset.split("-", 1)[-1]

    def doc(self, fname: str):
        if fname not in self.docs:
            path = self.folder / fname
            if not path.is_file():
                raise Problem(f"no runs/{self.name}/{fname}")
            self.docs[fname] = _read(path)
        return self.docs[fname]

    def family(self) -> str:
        """The configuration without its seed and without where it ran: records of one
        configuration of a table must share it."""
        cfg = json.loads(json.dumps(self.config))
        if self.baseline:
            cfg = {k: v for k, v in cfg.items() if k not in VOLATILE}
        else:
            cfg.pop("name", None)
            cfg.get("data", {}).pop("data_root", None)
            cfg.get("train", {}).pop("device", None)
            cfg.get("train", {}).pop("seed", None)
        return json.dumps(cfg, sort_keys=True)


def read_record(runs: Path, name: str) -> Record:
    """The record ``runs/<name>/`` (raises :class:`Problem` when it is missing or has no config).

    Its preset is the one its name gives (``<preset>-seed<seed>-<config key>``, the notebook's
    :func:`equss.paper.runs.run_name`; a baseline's name starts with ``baseline-``), not the
    config's ``name``: runs of one config share a cached training (Table 3's Q3 is Table 1's
    EQUSS), whose ``config.yaml`` names the preset that trained it first."""
    folder = runs / name
    if not name or not folder.is_dir():
        raise Problem(f"no record runs/{name}")
    baseline = name.startswith("baseline-")
    match = re.fullmatch(r"(.+)-seed(\d+)-[0-9a-f]+", name[len("baseline-"):] if baseline else name)
    if match is None:
        raise Problem(f"runs/{name}: not a record name (<preset>-seed<seed>-<config key>)")
    preset = match.group(1)
    if baseline:
        prov = _read(folder / "baseline.json").get("provenance", {}) if (folder / "baseline.json").is_file() else {}
        if not {"scale", "dataset", "seed"} <= set(prov):
            raise Problem(f"runs/{name}: no baseline.json provenance with scale, dataset and seed")
        rec = Record(name, folder, preset, prov["scale"], prov["dataset"], int(prov["seed"]), True, prov)
    else:
        if not (folder / "config.yaml").is_file():
            raise Problem(f"runs/{name}: no config.yaml")
        cfg = _read(folder / "config.yaml")
        try:
            rec = Record(name, folder, preset, cfg["scale"], cfg["data"]["dataset"], int(cfg["train"]["seed"]),
                         False, cfg)
        except (KeyError, TypeError, ValueError) as exc:
            raise Problem(f"runs/{name}/config.yaml: no {exc}") from None
    if rec.seed != int(match.group(2)):
        raise Problem(f"runs/{name}: its name says seed {match.group(2)}, its configuration seed {rec.seed}")
    return rec


class Records(dict):
    """The records of a ``runs/`` folder, read once each."""

    def __init__(self, runs: Path):
        super().__init__()
        self.runs = runs

    def get_record(self, name: str) -> Record:
        if name not in self:
            self[name] = read_record(self.runs, name)
        return self[name]


# ---------------------------------------------------------------------------- rows rebuilt from a record
def _is_crf(fname: str) -> bool:
    return "_crf" in Path(fname).stem


def _step(fname: str) -> int:
    return int(re.fullmatch(r"eval_step_(\d+)\.json", fname).group(1))


def metric_rows(rec: Record, fname: str, label: str, extra: dict) -> list[dict]:
    """The rows of a table of Acc / mIoU numbers from one file, by :func:`equss.paper.tables.row`: one
    row of an evaluation or a baseline (``probe`` online), one per part of a post-hoc file
    (``posthoc.json``: ``post-hoc`` from its head part, ``post-hoc quantised`` from its quantised part)."""
    result = {**rec.doc(fname), "run": rec.name, "eval_file": fname}
    if Path(fname).name.startswith("posthoc"):
        return [table_row(label, result, rec.dataset, rec.seed, probe=probe, **extra)
                for probe, part in PROBE_PARTS.items() if part in result]
    return [table_row(label, result, rec.dataset, rec.seed, crf=_is_crf(fname), **extra)]


def entropy_rows(rec: Record, fname: str, label: str, extra: dict) -> list[dict]:
    """Fig. 4's per-class rows of one record (entropy from ``fig4.json``, IoU from ``eval.json``)."""
    doc, iou = rec.doc(fname), rec.doc("eval.json")["cluster"]["per_class_iou"]
    names = doc["class_names"]
    return [{"method": label, "dataset": rec.dataset, "seed": rec.seed, "run": rec.name, "eval": fname,
             "class": names[int(c)], "class_index": int(c), "entropy_bits": float(bits),
             "iou": math.nan if iou[int(c)] is None else float(iou[int(c)]), "source": MEASURED}
            for c, bits in doc["entropy_bits"].items()]


def distance_rows(rec: Record, fname: str, label: str, extra: dict) -> list[dict]:
    """Fig. 4d's rows of one EQUSS record: every class pair with a finite distance (Eq. 9)."""
    doc = rec.doc(fname)
    names, dist = doc["class_names"], doc["distance"]
    return [{"dataset": rec.dataset, "seed": rec.seed, "run": rec.name, "eval": fname, "class_a": names[a],
             "class_a_index": a, "class_b": names[b], "class_b_index": b, "distance": float(dist[a][b]),
             "source": MEASURED}
            for a in range(len(names)) for b in range(len(names))
            if dist[a][b] is not None and math.isfinite(dist[a][b])]


# ---------------------------------------------------------------------------- labels and extra columns
def named(labels) -> Callable[[Record], str | None]:
    """The label whose first word is the record's preset variant (``STEGO`` for ``camvid-stego``,
    ``M1 (70, no PQ)`` for ``camvid-M1``); None for a baseline or another variant."""
    def label(rec: Record) -> str | None:
        if rec.baseline:
            return None
        return next((n for n in labels if n.split()[0].lower() == rec.variant.lower()), None)
    return label


def table1_label(rec: Record) -> str | None:
    return BASELINE if rec.baseline and rec.variant == "equss" else named([*paper.TABLE1, "M1"])(rec)


def table2_label(rec: Record) -> str | None:
    return BASELINE if rec.baseline and rec.variant == "equss" else named([*paper.TABLE2A, "M1"])(rec)


def fig2_label(rec: Record) -> str | None:
    """The Fig. 2 head the record's config trains (the notebook's ``methods``)."""
    if rec.baseline or rec.variant != "equss":
        return None
    model = rec.config["model"]
    if model.get("objective") == "supervised":
        return "supervised head"
    return "EQUSS (PQ)" if model["pq"] else "STEGO head"


def no_extra(rec: Record, fname: str) -> dict:
    return {}


def fig2_extra(rec: Record, fname: str) -> dict:
    return {"dim": rec.config["model"]["head_dim"]}


def fig6_extra(rec: Record, fname: str) -> dict:
    return {"M": rec.config["model"]["num_codebooks"], "K": rec.config["model"]["codebook_size"]}


def curve_extra(rec: Record, fname: str) -> dict:
    """A learning-curve row's step (from ``eval_step_<N>.json``) and that step's validation mIoU."""
    step = _step(fname)
    val = rec.doc("log.jsonl").get(step)
    if val is None:
        raise Problem(f"runs/{rec.name}/log.jsonl has no validation at step {step}")
    return {"step": step, "val_unsup_miou": val["cluster_mIoU"], "val_linear_miou": val["linear_mIoU"]}


# ---------------------------------------------------------------------------- configurations a table must have
def _cited(groups: list[tuple], i: int) -> list:
    return sorted({g[i] for g in groups})


def _resolutions(groups: list[tuple], prov: dict, i: int, main_of=lambda g: True) -> tuple[int | None, list[int]]:
    """A table's main evaluation resolution and its check resolutions (issue 26's resolution check):
    the provenance's ``eval_resolution`` / ``check_resolutions`` when the notebook wrote them, else the
    largest resolution of the rows ``main_of`` selects (the CRF rows, evaluated only at the main
    one) and the other resolutions cited."""
    cited = sorted({g[i] for g in groups if g[i] is not None})
    main = prov.get("eval_resolution")
    if main is None:
        picked = [g[i] for g in groups if main_of(g) and g[i] is not None]
        main = max(picked) if picked else (max(cited) if cited else None)
    checks = prov.get("check_resolutions")
    checks = sorted(int(r) for r in checks) if checks is not None else [r for r in cited if r != main]
    return main, checks


def table1_configurations(groups, prov) -> set:
    """Table 1 (issue 26): the raw features (k-means + linear probe; probe column ``online``, recipe "—")
    and STEGO, M1 and EQUSS with their online probes without and with the CRF and their post-hoc probes
    (EQUSS also on its quantised vectors), at the evaluation resolution; every arm also without the CRF
    at each check resolution (224, the training resolution, at proxy scale)."""
    main, checks = _resolutions(groups, prov, 3, main_of=lambda g: g[1] is True)
    out = {(BASELINE, False, "online", r) for r in [main, *checks]}
    for m in TRAINED:
        out |= {(m, False, "online", main), (m, True, "online", main), (m, False, "post-hoc", main)}
        out |= {(m, False, "online", r) for r in checks}
    return out | {("EQUSS", False, "post-hoc quantised", main)}


def table1_legacy_configurations(groups, prov) -> set:
    return {(BASELINE, False)} | {(m, crf) for m in METHODS for crf in (False, True)}


def table2_configurations(groups, prov) -> set:
    """Table 2's parts 2a / 2b (issue 26): STEGO and EQUSS with their online probes in each part, and,
    where a part has them, M1 (then with the same rows as the others), the raw features, and post-hoc
    rows (then for every trained arm of that part, EQUSS also quantised), at the part's evaluation
    resolution; online rows of every trained arm at each check resolution cited in the part."""
    out = set()
    for t in ("2a", "2b"):
        mine = [g for g in groups if g[1] == t]
        main, checks = _resolutions(mine, prov.get(t, {}) if isinstance(prov.get(t), dict) else {}, 3,
                                    main_of=lambda g: g[2] == "online")
        methods = ["STEGO", "EQUSS"] + (["M1"] if any(g[0] == "M1" for g in mine) else [])
        out |= {(m, t, "online", r) for m in methods for r in [main, *checks]}
        if any(g[2] != "online" for g in mine):
            out |= {(m, t, "post-hoc", main) for m in methods} | {("EQUSS", t, "post-hoc quantised", main)}
        out |= {(BASELINE, t, "online", r) for r in [main, *checks] if any(g[0] == BASELINE for g in mine)}
    return out


def table2_legacy_configurations(groups, prov) -> set:
    return {(m, t) for m in METHODS for t in ("2a", "2b")}


def fig2_configurations(groups, prov) -> set:
    return {(m, d) for m in FIG2_METHODS for d in (prov.get("dims") or _cited(groups, 1))}


def fig6_configurations(groups, prov) -> set:
    return {(m, k) for m in (prov.get("Ms") or _cited(groups, 0)) for k in (prov.get("Ks") or _cited(groups, 1))}


def curve_configurations(groups, prov) -> set:
    """STEGO and EQUSS at every step cited, and M1 where the curves have it (issue 26: every arm whose
    last checkpoint a table evaluates)."""
    methods = [*METHODS, *(["M1"] if any(g[0] == "M1" for g in groups) else [])]
    return {(m, s) for m in methods for s in _cited(groups, 1)}


# ---------------------------------------------------------------------------- the notebooks' quoted rows
def table2_quoted() -> list[dict]:
    return ([dict(r, table="2a") for r in paper.quoted_rows(paper.TABLE2A, " [Cityscapes-27, ViT-B/8]")]
            + [dict(r, table="2b") for r in paper.quoted_rows(paper.TABLE2B, " [Potsdam-3]")])


def fig4_quoted() -> list[dict]:
    return [{"method": m, "class": "average (quoted, CocoStuff-27)", "entropy_bits": b, "source": paper.QUOTED}
            for m, b in paper.ENTROPY_BITS.items()]


def curves_tail(results: Path, rows: list[dict]) -> tuple[str, list[str]]:
    """What :func:`equss.paper.curves.write` appends to ``learning_curves.md`` (chosen steps,
    checkpoint selection) for these rows, and the problems of ``learning_curves.json`` against the
    same rebuild (its parameters, e.g. the tolerance, are taken from it)."""
    from equss.paper import curves

    path = results / "learning_curves.json"
    if not path.is_file():
        return "", [f"{path.name}: missing (curves.write makes it with learning_curves.csv)"]
    doc = json.loads(path.read_text())
    params = {k: v for k, v in doc.items() if k not in ("rule", "chosen", "selection")}
    chosen = curves.choose_steps(rows, params.get("tolerance", 0.5))
    selected = curves.selection(rows, params.get("last_k", 3))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "learning_curves.md").write_text("")
        curves.write(tmp, rows, chosen, selected, **params)
        tail = (Path(tmp) / "learning_curves.md").read_text()
        want = json.loads((Path(tmp) / "learning_curves.json").read_text())
    return tail, compare_json(path.name, doc, want, "rebuilt from learning_curves.csv")


# ---------------------------------------------------------------------------- the rules
@dataclass(frozen=True)
class Rule:
    """How a table's notebook builds it (its static facts; the rest comes from the records)."""
    presets: dict                 # paper dataset of its presets -> extra columns of their rows
    label: Callable               # record -> method label (None: the record is not one of the table's)
    evals: str                    # regular expression of the record files its rows cite
    groups: tuple                 # the columns of one configuration (its seeds are its rows)
    configurations: Callable      # (cited configurations, provenance) -> the configurations it must have
    rows: Callable = metric_rows  # (record, file, label, extra) -> the rows rebuilt from that file
    extra: Callable = no_extra    # (record, file) -> more columns from the config or file
    keys: tuple = ()              # columns that tell apart the rows of one file (besides run, eval)
    quoted: Callable = list       # () -> the quoted rows, in order
    metrics: tuple = METRICS      # the Markdown's metrics and grouping (tables.markdown)
    by: tuple | None = None
    provenance: str = ""          # the .provenance.json with the table's seeds (default: its own)
    tail: Callable | None = None  # (results, typed rows) -> (text appended to the Markdown, problems)
    legacy: object = None         # the Rule of the table as written before NEW_COLUMNS (default: this one without them)


def _without_new_columns(rows: Callable) -> Callable:
    def rebuilt(*args) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in NEW_COLUMNS} for r in rows(*args)]
    return rebuilt


def legacy_rule(rule: Rule) -> Rule:
    """How a table written before :data:`NEW_COLUMNS` (its header has none of them: the committed
    results until the study regenerates them) is rebuilt: its own legacy rule, or this rule's rows
    without those columns."""
    import dataclasses

    base = rule.legacy if isinstance(rule.legacy, Rule) else rule
    return dataclasses.replace(base, rows=_without_new_columns(base.rows),
                               keys=tuple(k for k in base.keys if k not in NEW_COLUMNS), legacy=None)


def _fixed(*configs) -> Callable:
    return lambda groups, prov: set(configs)


_TABLE1_QUOTED = lambda: paper.quoted_rows(paper.TABLE1, " [CocoStuff-27, ViT-S/8]")  # noqa: E731
_TABLE2_PRESETS = {"cityscapes27": {"table": "2a"}, "potsdam3": {"table": "2b"}}

RULES: dict[str, Rule] = {
    "table1": Rule({"cocostuff27": {}}, table1_label, r"baseline\.json|eval(_r\d+)?(_crf)?\.json|posthoc\.json",
                   ("method", "crf", "probe", "resolution"), table1_configurations, keys=("probe",),
                   quoted=_TABLE1_QUOTED,
                   legacy=Rule({"cocostuff27": {}}, table1_label, r"baseline\.json|eval(_crf)?\.json", ("method", "crf"),
                               table1_legacy_configurations, quoted=_TABLE1_QUOTED)),
    "table2": Rule(_TABLE2_PRESETS, table2_label, r"baseline\.json|eval(_r\d+)?\.json|posthoc\.json",
                   ("method", "table", "probe", "resolution"), table2_configurations, keys=("probe",),
                   quoted=table2_quoted,
                   legacy=Rule(_TABLE2_PRESETS, named(paper.TABLE2A), r"eval\.json", ("method", "table"),
                               table2_legacy_configurations, quoted=table2_quoted)),
    "table3": Rule({"cocostuff27": {}}, named(paper.TABLE3), r"eval\.json", ("method",),
                   _fixed(*((k,) for k in paper.TABLE3)),
                   quoted=lambda: paper.quoted_rows(paper.TABLE3, " [CocoStuff-27]")),
    "fig2": Rule({"cocostuff27": {}}, fig2_label, r"eval\.json", ("method", "dim"), fig2_configurations,
                 extra=fig2_extra),
    "fig4": Rule({"cocostuff27": {}}, named(METHODS), r"fig4\.json", ("method",), _fixed(*((m,) for m in METHODS)),
                 rows=entropy_rows, keys=("class_index",), quoted=fig4_quoted, metrics=("entropy_bits", "iou")),
    "fig4_distance": Rule({"cocostuff27": {}}, named(["EQUSS"]), r"fig4\.json", (), _fixed(()), rows=distance_rows,
                          keys=("class_a_index", "class_b_index"), metrics=("distance",), provenance="fig4"),
    "fig6": Rule({"cityscapes27": {}}, named(["EQUSS"]), r"eval\.json", ("M", "K"), fig6_configurations,
                 extra=fig6_extra),
    "learning_curves": Rule({"cocostuff27": {}}, named(TRAINED), r"eval_step_\d+\.json", ("method", "step"),
                            curve_configurations, extra=curve_extra,
                            metrics=("val_unsup_miou", "val_linear_miou", "unsup_miou", "linear_miou"),
                            by=("method", "dataset", "step"), tail=curves_tail),
}


# ---------------------------------------------------------------------------- comparing values
def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def same_value(got: str, want) -> bool:
    """A CSV cell against a rebuilt value: numbers to 1e-9 (NaN equals NaN), the rest as
    :class:`csv.DictWriter` writes it (None as an empty cell)."""
    if isinstance(want, float):
        g = _float(got)
        if g is None:
            return False
        if math.isnan(want) or math.isnan(g):
            return math.isnan(want) and math.isnan(g)
        return abs(g - want) <= TOL
    return got == ("" if want is None else str(want))


def typed(row: dict) -> dict:
    """A CSV row as its notebook held it: booleans, ints and floats parsed; a quoted row without
    its empty cells (the notebook's quoted rows lack those keys), a measured one with None there."""
    quoted = row.get("source", MEASURED) != MEASURED
    out = {}
    for k, v in row.items():
        if v is None or v == "":
            if not quoted:
                out[k] = None
            continue
        if v in ("True", "False"):
            out[k] = v == "True"
        elif re.fullmatch(r"-?\d+", v):
            out[k] = int(v)
        else:
            out[k] = _float(v) if _float(v) is not None else v
    return out


def _same_cell(got: str, want: str) -> bool:
    """Two cells written by the same CSV writer: equal text, or equal numbers to 1e-9."""
    return got == want or (_float(want) is not None and same_value(got, float(want)))


def compare_text(name: str, got: str, want: str, what: str) -> list[str]:
    """The first line where ``got`` differs from ``want`` (text made by the code)."""
    if got == want:
        return []
    g, w = got.split("\n"), want.split("\n")
    n = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
    return [f"{name}:{n + 1}: {g[n] if n < len(g) else '(end of file)'!r} but {what} gives "
            f"{w[n] if n < len(w) else '(end of file)'!r}"]


def compare_json(name: str, got, want, what: str, path: str = "") -> list[str]:
    """Differences between two JSON values (numbers to 1e-9), each named by its path."""
    where = f"{name}: {path or '(top)'}"
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}: {what} has no {k!r}" for k in got if k not in want]
        out += [f"{where}: {k!r} missing ({what} has it)" for k in want if k not in got]
        for k in want:
            if k in got:
                out += compare_json(name, got[k], want[k], what, f"{path}.{k}" if path else str(k))
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items but {what} gives {len(want)}"]
        return [p for i, (a, b) in enumerate(zip(got, want)) for p in compare_json(name, a, b, what, f"{path}[{i}]")]
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(got, (int, float)):
        ok = abs(float(got) - float(want)) <= TOL or (math.isnan(float(got)) and math.isnan(float(want)))
    else:
        ok = got == want
    return [] if ok else [f"{where} = {got!r} but {what} gives {want!r}"]


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


# ---------------------------------------------------------------------------- one table
def _describe(cols: tuple, group: tuple) -> str:
    return ", ".join(f"{c} {v}" for c, v in zip(cols, group)) or "the table"


def _paper_dataset(rule: Rule, rec: Record) -> str | None:
    """Which of the rule's paper presets the record ran (its preset at the record's scale)."""
    return next((d for d in rule.presets if preset_for(f"{d}-{rec.variant}", rec.scale) == rec.preset), None)


def rebuild_file(rule: Rule, records: Records, run: str, fname: str) -> dict[tuple, dict]:
    """The rows a record file gives in this table, by key (run, eval, index columns)."""
    rec = records.get_record(run)
    if not re.fullmatch(rule.evals, fname or ""):
        raise Problem(f"eval = {fname!r} is not a file this table's rows come from")
    dataset, label = _paper_dataset(rule, rec), rule.label(rec)
    if dataset is None or label is None:
        raise Problem(f"runs/{run} (preset {rec.preset}) is not one of this table's runs")
    try:
        rows = rule.rows(rec, fname, label, {**rule.presets[dataset], **rule.extra(rec, fname)})
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise Problem(f"runs/{run}/{fname}: not what this table reads ({exc!r})") from None
    return {(run, fname, *(str(r[c]) for c in rule.keys)): r for r in rows}


def check_measured(name: str, rule: Rule, header: list[str], measured: list[tuple[int, dict]],
                   records: Records) -> tuple[list[dict], list[str]]:
    """Every measured row against its rebuild (each column), no row twice, no row of a cited
    file left out.  Returns the rebuilt rows (in the CSV's order) and the problems."""
    problems, files, seen, rebuilt = [], {}, {}, []
    for line, row in measured:
        where, run, fname = f"{name}:{line}", row.get("run") or "", row.get("eval") or ""
        if (run, fname) not in files:
            try:
                files[run, fname] = rebuild_file(rule, records, run, fname)
            except Problem as exc:  # reported at the first row that cites the file
                files[run, fname] = exc
                problems.append(f"{where}: {exc}")
        if isinstance(files[run, fname], Problem):
            continue
        key = (run, fname, *(row.get(c) or "" for c in rule.keys))
        if key in seen:
            problems.append(f"{where}: a second row for {' '.join(key)} (first: line {seen[key]})")
            continue
        seen[key] = line
        want = files[run, fname].get(key)
        if want is None:
            problems.append(f"{where}: runs/{run}/{fname} has no row {dict(zip(rule.keys, key[2:]))}")
            continue
        rebuilt.append(want)
        for col in header:
            if col in want and not same_value(row.get(col) or "", want[col]):
                verb = "says" if isinstance(want[col], float) else "gives"
                problems.append(f"{where}: {col} = {row.get(col)!r} but runs/{run}/{fname} {verb} {want[col]!r}")
    for built in files.values():
        for key in (built if isinstance(built, dict) else {}):
            if key not in seen:
                problems.append(f"{name}: no row for {' '.join(key[:2])} {dict(zip(rule.keys, key[2:]))}")
    return rebuilt, problems


def check_quoted(name: str, quoted: list[tuple[int, dict]], expected: list[dict]) -> list[str]:
    """The rows not marked measured are exactly the notebook's quoted rows, with their values."""
    want = {r["method"]: r for r in expected}
    problems, seen = [], {}
    for line, row in quoted:
        label = row.get("method", "")
        if label in seen:
            problems.append(f"{name}:{line}: a second quoted row {label!r} (first: line {seen[label]})")
            continue
        if label not in want:
            problems.append(f"{name}:{line}: {label!r} with source {row.get('source')!r} is neither a measured "
                            "row nor one of the rows quoted from the paper (equss.paper.quoted)")
            continue
        seen[label] = line
        for col, got in row.items():
            if not same_value(got or "", want[label].get(col)):
                problems.append(f"{name}:{line}: {col} = {got!r} but equss.paper.quoted gives "
                                f"{want[label].get(col)!r} for {label!r}")
    problems += [f"{name}: no quoted row {label!r} (equss.paper.quoted)" for label in want if label not in seen]
    return problems


def check_header(name: str, header: list[str], rows: list[dict]) -> list[str]:
    """The columns in the order :func:`equss.paper.tables.save_table` writes them for these rows."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return [] if header == cols else [f"{name}: columns {header} but the rebuilt rows have {cols}"]


def table_seeds(prov: dict, rebuilt: list[dict]) -> list[int]:
    """The table's seeds: those its provenance names (the notebook's ``seeds``), else those cited."""
    seeds = prov.get("seeds")
    return sorted(int(s) for s in seeds) if seeds else sorted({r["seed"] for r in rebuilt})


def check_configurations(name: str, rule: Rule, rebuilt: list[dict], seeds: list[int], prov: dict,
                         records: Records) -> list[str]:
    """Every configuration of the table present, each with one record per seed of the table,
    all of one configuration; rows with and without the CRF from the same records."""
    groups: dict[tuple, dict[int, set[str]]] = {}
    for r in rebuilt:
        groups.setdefault(tuple(r.get(c) for c in rule.groups), {}).setdefault(r["seed"], set()).add(r["run"])
    expected = rule.configurations(list(groups), prov)
    problems = [f"{name}: no rows for {_describe(rule.groups, g)}" for g in sorted(expected - set(groups), key=str)]
    for g, by_seed in groups.items():
        what = _describe(rule.groups, g)
        if g not in expected:
            problems.append(f"{name}: rows for {what}, which is not one of this table's configurations")
        missing, extra = [s for s in seeds if s not in by_seed], sorted(s for s in by_seed if s not in seeds)
        if missing:
            problems.append(f"{name}: {what}: no row for seed {', '.join(map(str, missing))} "
                            f"(the table's seeds: {', '.join(map(str, seeds))})")
        if extra:
            problems.append(f"{name}: {what}: seed {', '.join(map(str, extra))} is not one of the table's seeds "
                            f"({', '.join(map(str, seeds))})")
        problems += [f"{name}: {what}, seed {s}: rows from {len(runs)} records ({', '.join(sorted(runs))})"
                     for s, runs in by_seed.items() if len(runs) > 1]
        runs = sorted({run for rs in by_seed.values() for run in rs})
        if len({records.get_record(run).family() for run in runs}) > 1:
            problems.append(f"{name}: {what}: records of different configurations ({', '.join(runs)})")
    if "crf" in rule.groups:
        i = rule.groups.index("crf")
        for g, by_seed in groups.items():
            plain = g[:i] + (False,) + g[i + 1:]
            if g[i] is True and plain in groups and by_seed != groups[plain]:
                problems.append(f"{name}: {_describe(rule.groups, g)}: not the records of the rows without the CRF")
    return problems


def check_markdown(path: Path, rule: Rule, rows: list[dict]) -> list[str]:
    """``<table>.md`` against :func:`equss.paper.tables.markdown` of the CSV (caption line kept)."""
    md = path.with_suffix(".md")
    if not md.is_file():
        return [f"{md.name}: missing (save_table writes it beside {path.name})"]
    got = md.read_text()
    first = got.split("\n", 1)[0]
    caption = "" if first.startswith("|") else first
    rows = [typed(r) for r in rows]
    want, problems = markdown(rows, rule.metrics, rule.by, caption), []
    if rule.tail:
        tail, problems = rule.tail(path.parent, rows)
        want += tail
    return problems + compare_text(md.name, got, want, f"the Markdown of {path.name}")


def check_table(path: Path, runs: Path, records: Records | None = None) -> list[str]:
    """A table CSV (and its Markdown) against its rebuild from the records by its rule."""
    path = Path(path)
    rule, name = RULES[path.stem], path.name
    header, rows = _read_csv(path)
    if not rows:
        return [f"{name}: empty"]
    if not set(NEW_COLUMNS) & set(header):  # written before the probe / resolution / recipe columns
        rule = legacy_rule(rule)
    records = records if records is not None else Records(Path(runs))
    lines = list(enumerate(rows, start=2))
    measured = [(i, r) for i, r in lines if r.get("source") == MEASURED]
    quoted = [(i, r) for i, r in lines if r.get("source") != MEASURED]
    rebuilt, problems = check_measured(name, rule, header, measured, records)
    problems += check_quoted(name, quoted, rule.quoted())
    problems += check_header(name, header, rebuilt[:1] + rule.quoted())
    prov_path = path.parent / f"{rule.provenance or path.stem}.provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    problems += check_configurations(name, rule, rebuilt, table_seeds(prov, rebuilt), prov, records)
    return problems + check_markdown(path, rule, rows)


# ---------------------------------------------------------------------------- claims
def check_claims(results: Path) -> list[str]:
    """``claims.csv`` (and ``claims.md``) against :func:`equss.paper.claims.paper_claims` of the
    folder's tables, written by :func:`equss.paper.claims.write`; every field, numbers to 1e-9."""
    from equss.paper import claims

    path = Path(results) / "claims.csv"
    if not path.is_file():
        return []
    try:
        verdicts = claims.paper_claims(claims.load_tables(results))
        with tempfile.TemporaryDirectory() as tmp:
            claims.write(verdicts, tmp)
            header, want = _read_csv(Path(tmp) / "claims.csv")
            want_md = (Path(tmp) / "claims.md").read_text()
    except Exception as exc:  # noqa: BLE001 - any failure of the claims code is a problem to report
        return [f"claims.csv: equss.paper.claims cannot recompute it from the tables ({type(exc).__name__}: {exc})"]
    got_header, got = _read_csv(path)
    what = "equss.paper.claims (from the tables)"
    problems = [] if got_header == header else [f"claims.csv: columns {got_header} but {what} writes {header}"]
    if len(got) != len(want):
        problems.append(f"claims.csv: {len(got)} claims but {what} gives {len(want)}")
    for line, (g, w) in enumerate(zip(got, want), start=2):
        cols = [c for c in header if not _same_cell(g.get(c) or "", w.get(c) or "")]
        if cols:  # one problem per claim: its first differing column, the others named
            c = cols[0]
            more = f" (also {', '.join(cols[1:])})" if cols[1:] else ""
            problems.append(f"claims.csv:{line}: {c} = {g.get(c)!r} but {what} gives {w.get(c)!r}{more}")
    md = Path(results) / "claims.md"
    if md.is_file():
        problems += compare_text(md.name, md.read_text(), want_md, what)
    return problems
