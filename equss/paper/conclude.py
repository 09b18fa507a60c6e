"""What a notebook concludes, computed from its results folder (never typed).

A notebook ends with :func:`conclusion` (Tables 1-3, Figs 2, 4, 6): the claims of the paper that its
table or figure makes (:func:`equss.paper.claims.paper_claims` over :func:`equss.paper.claims.load_tables`
of the notebook's own results folder; a claim concerns an artefact when its ``source`` names it), the
verdicts after Holm's correction, with the estimates, intervals and the paper's effects.  Holm's primary
family is every tested claim of the folder: when some tables are missing (one notebook run on its own) the
family is smaller than the full study's, and the text says so.

With the study's tables (issue 26) a conclusion also says: for a claim decided against two arms (EQUSS vs
STEGO on its own recipe and vs M1 on EQUSS's), both comparisons under it; where the records name a recipe
or tuning mismatch of a claim's arms, that mismatch (claims' ``arms``); and the secondary families, each row
beside its primary verdict: the linear-probe claims re-estimated with converged post-hoc probes (and how many
of the linear verdicts contradicted with the online probes survive them), and Table 1 at another evaluation
resolution.

The notebooks without a claim of the paper conclude from their own numbers: the learning curves
(:func:`curves`: the chosen steps and how well validation ranks test) and Fig. 5 (:func:`qualitative`:
per-image scores).  The claims notebook ends with :func:`overall`.

Each ``*_text`` function returns the Markdown string (tested); the others wrap it in
``IPython.display.Markdown`` for the notebook.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from equss.paper import claims, claims_arms

ORDER = claims.VERDICTS  # holds, equivalent, contradicted, inconclusive
MINUS = "\u2212"


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def sources(source: str) -> list[str]:
    """The tables / figures a claim's ``source`` names: ``"Table 1 / Table 2"`` -> Table 1, Table 2;
    ``"Tables 1, 2"`` -> Table 1, Table 2; ``"Fig. 4a, c"`` -> Fig. 4a, Fig. 4c."""
    out = []
    for part in re.split(r"\s*/\s*", source):
        m = re.match(r"^(Tables?|Figs?\.)\s+(.+)$", part.strip())
        if not m:
            out.append(part.strip())
            continue
        kind = "Table" if m.group(1).startswith("Table") else "Fig."
        stem = ""
        for item in re.split(r"\s*,\s*", m.group(2)):
            if re.match(r"^\d", item):
                stem = re.match(r"^\d+", item).group(0)
                out.append(f"{kind} {item}")
            else:  # "c" after "4a": the same figure number
                out.append(f"{kind} {stem}{item}")
    return out


def concerns(source: str, artefact: str) -> bool:
    """Whether a claim with ``source`` concerns ``artefact`` ("Table 1", "Fig. 4" covers Fig. 4a-d)."""
    return any(s == artefact or (s.startswith(artefact) and s[len(artefact):].isalpha()) for s in sources(source))


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _num(v: float, metric: str, signed: bool = True) -> str:
    """One decimal for points of Acc / mIoU, two otherwise (rho, fractions, Hamming distances)."""
    if not _finite(v):
        return "—"
    digits = 1 if ("Acc" in metric or "mIoU" in metric) else 2
    if round(v, digits) == 0:
        v = 0.0
    text = f"{v:+.{digits}f}" if signed and v else f"{v:.{digits}f}"
    return text.replace("-", MINUS)


def _p(p: float) -> str:
    if not _finite(p):
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _phrase(verdicts: Sequence) -> str:
    """``"1 holds, 2 are contradicted, 9 are inconclusive"``."""
    c = Counter(v.verdict for v in verdicts)
    words = {claims.HOLDS: ("holds", "hold"), claims.EQUIVALENT: ("is equivalent", "are equivalent"),
             claims.CONTRADICTED: ("is contradicted", "are contradicted"),
             claims.INCONCLUSIVE: ("is inconclusive", "are inconclusive")}
    return ", ".join(f"{c[k]} {words[k][0] if c[k] == 1 else words[k][1]}" for k in ORDER if c[k])


def _missing(v) -> bool:
    return not _finite(v.estimate) and str(v.note).endswith("not produced")


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}{'s' if k != 1 else ''}"


def _primary(verdicts: Sequence) -> list:
    """The primary family's rows (a verdict without ``family``, written before the study, is primary)."""
    return [v for v in verdicts if getattr(v, "family", claims.PRIMARY) == claims.PRIMARY]


def _counted(verdicts: Sequence) -> list:
    """The rows a count names: a comparison that decides a claim with another (``part_of``: EQUSS vs STEGO and
    vs M1) is shown under that claim, not counted on its own."""
    return [v for v in verdicts if not getattr(v, "part_of", "")]


def _family(verdicts: Sequence, present: Sequence[str]) -> str:
    """The sentence on Holm's family: its size and whether every table of the study was in it."""
    secondary = [f for f in claims.FAMILIES[1:] if any(getattr(v, "family", "") == f for v in verdicts)]
    verdicts = _primary(verdicts)
    tested = [v for v in verdicts if _finite(v.p) and not getattr(v, "parts", None)]
    if not tested:
        return ("None of the claims has a test at these runs (one run per arm gives no spread), so every verdict "
                "is inconclusive")
    absent = [t for t in claims.TABLES if t not in present and t != "fig4_distance"]
    apart = (f"; the {' and '.join(secondary)} are corrected in families of their own, so they do not dilute it"
             if secondary else "")
    if not absent:
        return (f"Verdicts after Holm's correction over all {_n(len(tested), 'tested claim')} of this results folder "
                f"(every table and figure present){apart}; intervals are unadjusted 95 % ones")
    have = [t for t in claims.TABLES if t in present]
    return (f"Verdicts after Holm's correction over the {_n(len(tested), 'tested claim')} of the tables in this "
            f"results folder only ({', '.join(have) or 'none'}; {', '.join(absent)} not produced here): "
            f"the full study's family is larger and its correction stricter (the claims notebook after every table)"
            f"{apart}")


def _against(v) -> bool:
    """The estimate points against the claimed direction (a directional claim)."""
    return v.kind == "directional" and _finite(v.estimate) and v.estimate * v.sign < 0


def _estimate(v) -> str:
    """``unsup. Acc +6.2 [−7.3, +19.6] (paper +5.5)`` (no interval where there is none)."""
    est = _num(v.estimate, v.metric)
    if _finite(v.low) and _finite(v.high):
        est += f" [{_num(v.low, v.metric)}, {_num(v.high, v.metric)}]"
    paper = f" (paper {_num(v.paper_effect, v.metric)})" if _finite(v.paper_effect) else ""
    return f"{v.metric} {est}{paper}"


def _item(v) -> str:
    """``unsup. Acc +6.2 [−7.3, +19.6] (paper +5.5), p (Holm) 1 → **inconclusive**``."""
    test = f"p (Holm) {_p(v.p_holm)}" if _finite(v.p_holm) else "no test"
    return f"{_estimate(v)}, {test} → **{v.verdict}**"


def _arms(v) -> str:
    """`` — arms: ...`` where the study's records name a mismatch of recipe or tuning (claims' ``arms``)."""
    arms = getattr(v, "arms", "")
    if not getattr(v, "study", False) or not arms or arms.startswith(claims_arms.MATCHED):
        return ""
    return f" — arms: {arms}"


def _bullets(groups: dict) -> list[str]:
    """One bullet per claim (its metrics after each other); the comparisons that decide a claim together
    (``part_of``) indented under it, named by what they compare against."""
    out = []
    for (claim, src), vs in groups.items():
        part = getattr(vs[0], "part_of", "")
        if part:
            what = claim.split(": ", 1)[-1]
            out.append(f"  - *{what}*: " + "; ".join(_item(v) for v in vs) + _arms(vs[0]))
        else:
            out.append(f"- **{claim}** ({src}): " + "; ".join(_item(v) for v in vs) + _arms(vs[0]))
    return out


def _secondary_text(every: Sequence, verdicts: Sequence) -> list[str]:
    """The secondary families' paragraphs for an artefact's rows ``every`` (``verdicts``: the whole folder's,
    for the size of each family): each claim's rows beside its primary row's verdict; for the post-hoc probes,
    how many of the linear verdicts contradicted with the online probes survive converged ones."""
    lines = []
    for fam in claims.FAMILIES[1:]:
        rows = [v for v in every if getattr(v, "family", "") == fam and not _missing(v)]
        if not rows:
            continue
        size = sum(_finite(v.p) and not getattr(v, "parts", None) for v in verdicts if getattr(v, "family", "") == fam)
        if fam == claims.POSTHOC_FAMILY:
            title = ("**Re-estimated with converged post-hoc probes** (the linear-probe claims: linear probes fit to "
                     "convergence on the frozen head output, on the quantised output for PQ arms")
        else:
            res = sorted({str(v.resolution) for v in rows})
            title = f"**Evaluated at resolution {', '.join(res)}** (Table 1's EQUSS vs STEGO and M1, online probes"
        lines += ["", f"{title}; a secondary family, Holm over its {_n(size, 'test')}): {_phrase(_counted(rows))}."]
        groups: dict[tuple, list] = {}
        for v in rows:
            groups.setdefault((v.claim, v.source), []).append(v)
        for (claim, src), vs in groups.items():
            items = "; ".join(_item(v) + (f" (primary {_num(v.counterpart.estimate, v.metric)} → "
                                          f"{v.counterpart.verdict})" if getattr(v, "counterpart", None) else "")
                              for v in vs)
            part = getattr(vs[0], "part_of", "")
            lines.append(f"  - *{claim.split(': ', 1)[-1]}*: {items}" if part else f"- **{claim}** ({src}): {items}")
        if fam == claims.POSTHOC_FAMILY:
            lines.append(_survival(rows))
    return lines


def _survival(rows: Sequence) -> str:
    """Whether the linear verdicts contradicted with the online probes survive converged probes: the
    post-hoc verdicts of those claims, the ones still contradicted named."""
    pairs = [(v.counterpart, v) for v in _counted(rows) if getattr(v, "counterpart", None) is not None
             and v.counterpart.verdict == claims.CONTRADICTED]
    if not pairs:
        return "No linear-probe claim here is contradicted with the online probes."
    again = [c for c, v in pairs if v.verdict == claims.CONTRADICTED]
    return (f"Of the {_n(len(pairs), 'linear verdict')} contradicted with the online probes, with converged "
            f"probes {_phrase([v for _, v in pairs])}"
            + (f" (still contradicted: {'; '.join(f'{c.claim}, {c.metric}' for c in again)})" if again else "") + ".")


def text(verdicts: Sequence, artefact: str, present: Sequence[str]) -> str:
    """The conclusion of ``artefact`` ("Table 1", "Fig. 4", ...) from the finalised ``verdicts`` of a
    results folder whose tables are ``present`` (the keys of :func:`equss.paper.claims.load_tables`): the
    primary family's claims, then the study's secondary families (post-hoc probes, other resolutions)."""
    every = [v for v in verdicts if concerns(v.source, artefact)]
    mine = _primary(every)
    head = f"**What {artefact} shows** (computed by `equss.paper.claims` from this notebook's results folder)."
    if not mine:
        return f"{head} The paper makes no claim on {artefact} that the reproduction tests."
    missing = [v for v in mine if _missing(v)]
    decided = [v for v in mine if not _missing(v)]
    if not decided:
        notes = "; ".join(dict.fromkeys(v.note for v in missing))
        return f"{head} No claim on {artefact} could be decided: {notes}."
    groups: dict[tuple, list] = {}
    for v in decided:
        groups.setdefault((v.claim, v.source), []).append(v)
    counted = _counted(decided)
    claims_n = len({(v.claim, v.source) for v in counted})
    (claim, _), first = next(iter(groups.items()))
    n = len(counted)
    lead = (f"*{claim}*, measured: " + ", ".join(f"{v.metric} {_num(v.estimate, v.metric)}"
                                     + (f" (paper {_num(v.paper_effect, v.metric)})" if _finite(v.paper_effect) else "")
                                     for v in first) + ". ")
    if claims_n < n:
        lead += (f"Of the {n} tests of the paper's {claims_n} claims on {artefact} (one per metric), "
                 f"{_phrase(counted)}")
    else:
        lead += f"Of the {n} claim{'s' if n != 1 else ''} of the paper on {artefact}, {_phrase(counted)}"
    against = [v for v in counted if v.verdict == claims.INCONCLUSIVE and _against(v)]
    if against:
        k = sum(v.verdict == claims.INCONCLUSIVE for v in counted)
        lead += f"; on {len(against)} of the {k} inconclusive ones the estimate points against the paper"
    if len(counted) < len(decided):
        lead += ("; a claim decided against two arms (EQUSS vs STEGO on its own recipe, and vs M1, STEGO's head on "
                 "EQUSS's recipe) holds only where both comparisons hold and is contradicted where either is")
    lead += ". " + _family(verdicts, present) + "."
    tail = ["", "Estimates in the claim's orientation (A − B for \"A > B\"; a slope or rho for a trend), "
            "in points for Acc / mIoU; the interval, test and power of each are in the claims notebook."]
    if missing:
        tail.append("Not decided here: " + "; ".join(dict.fromkeys(v.note for v in missing)) + ".")
    return "\n".join([head + " " + lead, "", *_bullets(groups), *_secondary_text(every, verdicts), *tail])


def conclusion(results_dir, artefact: str):
    """:func:`text` for a notebook: the claims of ``artefact`` decided from ``results_dir`` (Markdown)."""
    tables = claims.load_tables(results_dir)
    return _markdown(text(claims.paper_claims(tables), artefact, list(tables)))


def overall_text(verdicts: Sequence, present: Sequence[str]) -> str:
    """The claims notebook's conclusion: the verdicts per table / figure, and the claims that hold or are
    contradicted by name."""
    decided = _counted([v for v in _primary(verdicts) if not _missing(v)])
    head = f"**What the reproduction shows.** Of the {len(decided)} claims decided, {_phrase(decided) or 'none'}. "
    head += _family(verdicts, present) + "."
    per: dict[str, list] = {}
    for v in decided:
        per.setdefault(v.source, []).append(v)
    lines = [head, ""]
    lines += [f"- {src}: {_phrase(vs)}" for src, vs in per.items()]
    for k in (claims.HOLDS, claims.EQUIVALENT, claims.CONTRADICTED):
        named = [v for v in decided if v.verdict == k]
        if named:
            lines += ["", f"{k.capitalize()}: " + "; ".join(f"{v.claim} ({v.source}, {_estimate(v)}{_parts(v)})"
                                                         for v in named) + "."]
    lines += _secondary_summary(verdicts)
    missing = [v for v in verdicts if _missing(v)]
    if missing:
        lines += ["", "Not decided: " + "; ".join(dict.fromkeys(v.note for v in missing)) + "."]
    return "\n".join(lines)


def _parts(v) -> str:
    """``; vs STEGO holds, vs M1 is contradicted`` for a claim decided against two arms."""
    parts = getattr(v, "parts", None) or []
    return "".join(f"; {x.part_of} {x.verdict}" for x in parts)


def _secondary_summary(verdicts: Sequence) -> list[str]:
    """The claims notebook's lines on the secondary families: their verdicts, and the linear verdicts
    contradicted with the online probes that do or do not survive converged probes."""
    lines = []
    for fam in claims.FAMILIES[1:]:
        rows = _counted([v for v in verdicts if getattr(v, "family", "") == fam and not _missing(v)])
        if not rows:
            continue
        what = ("Re-estimated with converged post-hoc probes" if fam == claims.POSTHOC_FAMILY
                else "Table 1 at resolution " + ", ".join(sorted({str(v.resolution) for v in rows})))
        lines += ["", f"{what} (a secondary family, its own Holm correction): {_phrase(rows)}."]
        if fam == claims.POSTHOC_FAMILY:
            lines.append(_survival([v for v in verdicts if getattr(v, "family", "") == fam]))
    return lines


def overall(verdicts: Sequence, results_dir):
    """:func:`overall_text` for the claims notebook (Markdown)."""
    return _markdown(overall_text(verdicts, list(claims.load_tables(results_dir))))


def curves_text(chosen: dict, selected: Sequence[dict]) -> str:
    """The learning-curves notebook's conclusion: the step chosen per method on validation and, on test,
    how validation ranks the checkpoints (Spearman per seed) and best-on-validation vs the last one."""
    import numpy as np

    lines = ["**What the learning curves show** (computed from this notebook's curves). The paper makes no claim "
             "here: this notebook fixes the proxy's step counts on validation.", ""]
    for m, c in chosen.items():
        sel = [s for s in selected if s["method"] == m]
        rho = [s["spearman_val_test"] for s in sel if _finite(s.get("spearman_val_test"))]
        best = [s["test_at_best_val"] for s in sel if _finite(s.get("test_at_best_val"))]
        last = [s["test_at_last"] for s in sel if _finite(s.get("test_at_last"))]
        line = (f"- **{m}**: step {c['step']} chosen (seed-mean validation cluster mIoU {c['at_step']:.1f}; "
                f"maximum {c['max']:.1f} at step {c['max_step']})")
        if rho:
            line += ("; validation ranks the test mIoU of the checkpoints with Spearman rho "
                     + ", ".join(_num(r, "rho") for r in rho) + f" over {len(rho)} seed{'s' if len(rho) != 1 else ''}")
        if best and last:
            line += (f"; test cluster mIoU at the best-on-validation checkpoint {np.mean(best):.1f} vs "
                     f"{np.mean(last):.1f} at the last (seed means)")
        lines.append(line + ".")
    return "\n".join(lines)


def curves(chosen: dict, selected: Sequence[dict]):
    """:func:`curves_text` for the notebook (Markdown)."""
    return _markdown(curves_text(chosen, selected))


def qualitative_text(scores: Sequence[dict], images: Sequence[int], seed: int) -> str:
    """Fig. 5's conclusion from the per-image scores (:func:`equss.paper.figures.fig5_panels`): how often
    EQUSS beats STEGO on these images, without and with the CRF, and the mean scores."""
    import numpy as np

    lines = [f"**What Fig. 5 shows** (computed from the per-image scores above; test images "
             f"{', '.join(map(str, images))}, "
             f"seed {seed}). The paper's Fig. 5 is qualitative and states no number: no claim is tested here.", ""]
    for a, b in (("EQUSS", "STEGO"), ("EQUSS + CRF", "STEGO + CRF")):
        pairs = [(s[a]["mIoU"], s[b]["mIoU"]) for s in scores if a in s and b in s]
        if not pairs:
            continue
        x, y = np.array(pairs).T
        wins = int(np.sum(x > y))
        lines.append(f"- {a} vs {b}: higher per-image mIoU on {wins} of {len(pairs)} images "
                     f"(mean {np.nanmean(x):.1f} vs {np.nanmean(y):.1f}).")
    lines.append("")
    lines.append("A handful of images shows what the errors look like, not which method is better: the tables "
                 "over the whole test split decide that.")
    return "\n".join(lines)


def qualitative(scores: Sequence[dict], images: Sequence[int], seed: int):
    """:func:`qualitative_text` for the notebook (Markdown)."""
    return _markdown(qualitative_text(scores, images, seed))
