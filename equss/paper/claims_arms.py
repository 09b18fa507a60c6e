"""What the arms of a claim ran, read from the run records: shared batches, recipe, tuning (split off
from :mod:`equss.paper.claims`: one concept).

:class:`Configs` holds every run's flattened ``config.yaml`` (or a raw-backbone baseline's
``baseline.json`` provenance) by run name, the results folder's ``tuning.json`` (the loss shifts tuned
per proxy preset on validation, :mod:`equss.paper.tuning`) and the tables' ``recipe`` column.  It answers
three questions for a claim's arms (``{arm name: [run, ...]}``):

* :meth:`Configs.shares_batches`: do the arms' seed-s runs draw the same batches and kNN positives
  (the values in :data:`BATCH_KEYS` agree; the module docstring of :mod:`equss.paper.claims` says why
  these keys)?  Then they are compared paired by seed (or in one mixed model).
* :meth:`Configs.recipe`: what each arm ran (head, PQ, lr, clip, steps, loss shifts), the ``recipe``
  column of claims.csv.
* :meth:`Configs.matched`: are the arms **recipe- and tuning-matched**, or which mismatch must the reader
  know (claims.csv's ``arms`` column)?  Issue 26: a claim must compare arms that differ only in what it
  is about.  Checked, each from the records and never typed per claim:

  - **recipe**: the optimiser and protocol values of :data:`RECIPE_KEYS` (STEGO's recipe, ``_proxy_stego``
    in ``presets/proxy.yaml`` and ``_stego_recipe`` in ``presets/paper.yaml``, differs from EQUSS's in
    exactly these), named by the rows' ``recipe`` column (``equss.paper.tables``: "STEGO" / "EQUSS")
    where the tables carry it;
  - **steps** (``train.steps``) and the **checkpoint policy** (``eval.checkpoint``);
  - **tuning**: every trained arm's loss shifts are the ones tuned on validation for its preset, by the
    one rule of ``tuning.json``; an arm whose preset was not tuned, whose shifts differ from its
    preset's tuned ones, or whose model differs from the tuned preset (Fig. 2's widths and Fig. 6's
    M x K cells run ``camvid-equss`` with another head width / codebook grid and take its shifts) is
    named; without ``tuning.json`` the tuning is unrecorded, and said so.

  An untrained arm (the raw-backbone baseline) has no recipe or shifts: named, not a mismatch.
"""
from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

BATCH_KEYS = ("train.seed", "train.batch_size", "train.backbone", "train.weights", "data.dataset",
              "data.train_split", "data.resolution", "data.five_crop", "data.max_images", "data.num_neighbors",
              "data.knn_k")
# what STEGO's recipe changes against EQUSS's (presets: proxy.yaml _proxy_stego, paper.yaml _stego_recipe)
RECIPE_KEYS = ("train.lr", "train.probe_lr", "train.clip_grad", "train.amp", "model.dropout_per_branch",
               "model.probe_upsample", "data.five_crop")
SHIFT_KEYS = ("loss.pos_intra_shift", "loss.pos_inter_shift", "loss.neg_inter_shift")
MATCHED = "matched"


def _short(key: str) -> str:
    return key.split(".", 1)[1]


def _text(v) -> str:
    if v is True or v is False:
        return "yes" if v else "no"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _same(a, b) -> bool:
    """Config values equal, numbers by value (a config table column with gaps holds 1024 as 1024.0)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _values(cs: Sequence[dict], key: str) -> str:
    vals = sorted({c.get(key) for c in cs}, key=str)
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(vals) == 1:
        return _text(vals[0])
    return f"{min(nums):g}-{max(nums):g}" if len(nums) == len(vals) else "/".join(_text(v) for v in vals)


class Configs:
    """Run configs by run name (``configs`` of :func:`equss.paper.claims.load_tables`), with the folder's
    ``tuning`` (the parsed ``tuning.json``, or None) and ``recipes`` (run -> the tables' ``recipe``)."""

    def __init__(self, df, tuning: Mapping | None = None, recipes: Mapping[str, str] | None = None):
        def present(v):
            return not (isinstance(v, float) and math.isnan(v))

        self.by_run = {} if df is None else {r["run"]: {k: v for k, v in r.items() if present(v)}
                                               for r in df.to_dict("records")}
        self.tuning = tuning
        self.recipes = dict(recipes or {})

    def get(self, run) -> dict | None:
        return self.by_run.get(run)

    def shares_batches(self, arms: Mapping[str, Mapping[int, str]], unbalanced: bool = False) -> tuple[bool, str]:
        """Whether every arm's seed-s run draws the same batches and positives (BATCH_KEYS agree).  With
        ``unbalanced`` the arms may have run different seeds (a mixed model): every seed run by two or
        more arms must agree, and at least two seeds must be shared."""
        seeds = [set(r) for r in arms.values()]
        if not seeds:
            return False, "arms ran different seeds"
        if unbalanced:
            common = {s for s in set().union(*seeds) if sum(s in x for x in seeds) >= 2}
            if len(common) < 2 or any(len(s & common) < 1 for s in seeds):
                return False, "arms ran different seeds"
        elif any(s != seeds[0] for s in seeds) or len(seeds[0]) < 2:
            return False, "arms ran different seeds"
        else:
            common = seeds[0]
        for name, runs in arms.items():
            for run in runs.values():
                c = self.get(run)
                if c is None:
                    return False, f"no config record for {run}"
                if "train.seed" not in c:
                    what = c.get("baseline.what", "")
                    return False, f"{name} has no training batch stream" + (f" ({what})" if what else "")
        for s in sorted(common):
            ref = None
            for runs in arms.values():
                if s not in runs:
                    continue
                key = tuple(str(self.get(runs[s]).get(k)) for k in BATCH_KEYS)
                if ref is None:
                    ref = key
                elif key != ref:
                    return False, f"seed {s}: the arms' batch settings differ"
        why = "the arms share each seed's batches and positives"
        if any(s != seeds[0] for s in seeds):
            counts = {}
            for name, runs in arms.items():
                counts.setdefault(len(runs), []).append(name)
            why += " (unbalanced: " + "; ".join(f"{', '.join(n)} {k} seeds"
                                                 for k, n in sorted(counts.items(), reverse=True)) + ")"
        return True, why

    def recipe(self, arms: Mapping[str, Sequence[str]]) -> str:
        """What each arm ran: head, PQ, lr, clip, steps, loss shifts; values that vary within an arm
        are shown as their range."""
        keys = (("model.head_dim", "d"), ("model.pq", "PQ"), ("model.num_codebooks", "M"),
                ("model.codebook_size", "K"), ("model.objective", "objective"), ("train.lr", "lr"),
                ("train.clip_grad", "clip"), ("train.steps", "steps"),
                (("loss.pos_intra_shift", "loss.pos_inter_shift", "loss.neg_inter_shift"), "shifts"))
        parts = []
        for name, runs in arms.items():
            cs = [self.get(r) for r in runs]
            cs = [c for c in cs if c is not None]
            if not cs:
                continue
            if "baseline.what" in cs[0]:
                c = cs[0]
                parts.append(f"{name}: {c.get('baseline.what')} (k {c.get('baseline.k')}, "
                             f"{c.get('baseline.linear_epochs')} probe epochs)")
                continue
            items = []
            pq = {c.get("model.pq") for c in cs}
            for key, label in keys:
                if label in ("M", "K") and pq == {False}:
                    continue
                if isinstance(key, tuple):
                    vals = {"/".join(f"{c.get(k):g}" for k in key) for c in cs}
                else:
                    vals = {c.get(key) for c in cs}
                vals = sorted(vals, key=str)
                if len(vals) == 1:
                    v = vals[0]
                    text = "yes" if v is True else "no" if v is False else f"{v:g}" if isinstance(v, float) else v
                    items.append(f"{label} {text}")
                else:
                    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
                    items.append(f"{label} {min(nums):g}-{max(nums):g}" if len(nums) == len(vals)
                                 else f"{label} varies")
            parts.append(f"{name}: " + ", ".join(items))
        return " | ".join(parts)

    # ------------------------------------------------------------------------ recipe and tuning parity
    def _recipe_name(self, runs: Sequence[str]) -> str:
        names = {self.recipes[r] for r in runs if self.recipes.get(r) not in (None, "", "—")}
        return " / ".join(f"{n}'s recipe" for n in sorted(names)) if names else ""

    def matched(self, arms: Mapping[str, Sequence[str]]) -> str:
        """``"matched: ..."`` when the trained arms ran one recipe, step count and checkpoint policy with
        shifts tuned by one rule for their own preset, else every mismatch named (module docstring)."""
        trained, notes = {}, []
        for name, runs in arms.items():
            cs = [self.get(r) for r in runs]
            if not runs or any(c is None for c in cs):
                missing = [r for r, c in zip(runs, cs) if c is None]
                notes.append(f"{name}: no config record" + (f" ({', '.join(missing[:2])})" if missing else ""))
            elif all("train.seed" not in c for c in cs):
                notes.append(f"{name}: untrained baseline (no recipe or shifts; its probes fit to convergence on "
                             "frozen features, as the post-hoc probes)")
            else:
                trained[name] = (list(runs), [c for c in cs if "train.seed" in c])
        problems = []
        if len(trained) > 1:
            problems += self._recipe_mismatch(trained)
        problems += self._tuning_mismatch(trained)
        if problems:
            return "; ".join(problems + notes)
        if not trained:
            return "; ".join(notes) or "no trained arm"
        recipe = self._recipe_name([r for runs, _ in trained.values() for r in runs])
        rule = "shifts tuned on validation by one rule (tuning.json)"
        if len(trained) > 1:
            return "; ".join([f"{MATCHED}: one recipe" + (f" ({recipe})" if recipe else "") + f", {rule}"] + notes)
        name = next(iter(trained))
        if not notes:  # one trained arm and nothing else: nothing to match, its own tuning is in order
            return f"{MATCHED}: one arm ({name}" + (f", {recipe}" if recipe else "") + f"), {rule}"
        return "; ".join([f"{name}: " + (f"{recipe}, " if recipe else "") + rule] + notes)

    def _recipe_mismatch(self, trained: Mapping[str, tuple]) -> list[str]:
        out = []
        sig = {name: {k: _values(cs, k) for k in RECIPE_KEYS} for name, (_, cs) in trained.items()}
        differ = [k for k in RECIPE_KEYS if len({s[k] for s in sig.values()}) > 1]
        if differ:
            names = {name: self._recipe_name(runs) for name, (runs, _) in trained.items()}
            label = ", ".join(f"{name}: {names[name] or 'its recipe'}" for name in trained)
            vals = ", ".join(f"{_short(k)} " + " vs ".join(sig[name][k] for name in trained) for k in differ)
            out.append(f"recipes differ: {label} ({vals})")
        for key, what in (("train.steps", "steps"), ("eval.checkpoint", "checkpoint policy")):
            vals = {name: _values(cs, key) for name, (_, cs) in trained.items()}
            if len(set(vals.values())) > 1:
                out.append(f"{what} differ: " + ", ".join(f"{n} {v}" for n, v in vals.items()))
        return out

    def _tuning_mismatch(self, trained: Mapping[str, tuple]) -> list[str]:
        if not trained:
            return []
        arms = (self.tuning or {}).get("arms") if isinstance(self.tuning, Mapping) else None
        if not arms:
            return ["shifts' tuning not recorded (no tuning.json in the results folder)"]
        out = []
        for name, (_, cs) in trained.items():
            presets = sorted({str(c.get("name", "")) for c in cs})
            for preset in presets:
                mine = [c for c in cs if str(c.get("name", "")) == preset]
                tuned = arms.get(preset)
                if not tuned:
                    out.append(f"{name}: shifts not tuned ({preset or 'no preset'} not in tuning.json)")
                    continue
                want = (tuned.get("shifts") or {})
                if any(not math.isclose(float(c.get(k, math.nan)), float(want.get(_short(k), math.nan)),
                                        rel_tol=1e-9) for c in mine for k in SHIFT_KEYS):
                    out.append(f"{name}: shifts differ from {preset}'s tuned ones")
                    continue
                other = _model_changes(preset, mine)
                if other:
                    out.append(f"{name}: the runs take {preset}'s tuned shifts ({other})")
        return out


def _model_changes(preset: str, cs: Sequence[dict]) -> str:
    """Where the runs' model differs from the one ``preset`` was tuned with (its resolved config at the
    runs' scale): ``"tuned at head_dim 1024; these runs: head_dim 64-1024"``, or "" when it does not."""
    ref = _preset_model(preset, str(cs[0].get("scale") or "proxy"))
    if ref is None:
        return ""
    keys = [f"model.{k}" for k, v in ref.items() if any(f"model.{k}" in c and not _same(c[f"model.{k}"], v) for c in cs)]
    if not keys:
        return ""
    tuned = ", ".join(f"{_short(k)} {_text(ref[_short(k)])}" for k in keys)
    runs = ", ".join(f"{_short(k)} {_values(cs, k)}" for k in keys)
    return f"tuned at {tuned}; these runs: {runs}"


@functools.lru_cache(maxsize=64)
def _preset_model(preset: str, scale: str) -> dict | None:
    """The model section of ``preset`` resolved at ``scale`` (None for a name that is no preset)."""
    from dataclasses import asdict

    from equss.config import load_config
    from equss.errors import EqussError

    try:
        return asdict(load_config(preset, scale).model)
    except (EqussError, TypeError, ValueError):
        return None
