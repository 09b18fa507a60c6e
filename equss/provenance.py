"""Provenance recorded beside every result: commit, machine, versions, time."""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

from equss import __version__
from equss.device import cpu_model


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The git commit of the equss source tree ("+dirty" when it has uncommitted changes outside
    ``results/``: a reproduction rewriting its committed outputs does not make its own later
    runs name another commit)."""
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            return "unknown"  # not a git checkout (e.g. a copied tree)
        dirty = subprocess.run(["git", *_raw_content_filters(where), "status", "--porcelain", "--untracked-files=no",
                                "--", ":(top,exclude)results"], cwd=where,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _raw_content_filters(where) -> list[str]:
    """``-c filter.<name>.clean=cat`` for every clean filter configured (``make setup`` installs
    nbstripout's for notebooks/*.ipynb): ``git status`` compares the files as they are, without starting
    a Python per notebook.  In a fresh clone every notebook is "racily clean" and the filter took 14 s
    per ``git status`` -- beyond the old 10 s timeout, so the index was never refreshed, every run paid
    the 10 s again and recorded the commit as "unknown".  A source notebook saved with outputs now counts
    as a change ("+dirty"), which it is."""
    out = subprocess.run(["git", "config", "--get-regexp", r"^filter\..*\.clean$"], cwd=where,
                         capture_output=True, text=True, timeout=10).stdout
    names = {line.split()[0][len("filter."):-len(".clean")] for line in out.splitlines() if line.strip()}
    return [arg for name in sorted(names) for arg in ("-c", f"filter.{name}.clean=cat")]


# What produces the numbers: everything in the package but the notebook helpers
# (equss/paper: tables, figures, claims) and the command-line front end.
_NOT_IN_FINGERPRINT = ("paper", "cli.py", "__main__.py")


def _code_text(path: Path) -> str:
    """A source file as its syntax tree without docstrings (comments are not in the tree), so
    editing prose does not change the fingerprint; YAML presets as their parsed values."""
    import ast
    import json

    if path.suffix in (".yaml", ".yml"):
        import yaml

        return json.dumps(yaml.safe_load(path.read_text()), sort_keys=True)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_fingerprint(root: str | os.PathLike | None = None) -> str:
    """12-hex hash of the code that trains and evaluates (``equss/`` without ``paper/`` and the
    CLI front end; presets included).  Part of the run-cache key: a change of that code makes
    cached runs stale instead of silently reused; a docstring or comment edit does not."""
    import hashlib

    root = Path(root) if root else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(list(root.rglob("*.py")) + list(root.rglob("*.yaml"))):
        rel = path.relative_to(root)
        if rel.parts[0] in _NOT_IN_FINGERPRINT or "__pycache__" in rel.parts:
            continue
        h.update(str(rel.as_posix()).encode() + b"\0" + _code_text(path).encode() + b"\0")
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def running_code_fingerprint() -> str:
    """:func:`code_fingerprint` of this package, computed once per process: the code that is
    running (an edit of the sources during a run does not change what the run records), and
    no re-hashing of every source file at each checkpoint save (about 1.5 s on a 2-core CPU)."""
    return code_fingerprint()


def provenance(**extra) -> dict:
    """A dict describing where and how a result was produced; ``extra`` adds run fields."""
    info = {
        "equss_version": __version__,
        "git_commit": git_commit(),
        "code_fingerprint": running_code_fingerprint(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host_platform": platform.platform(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a plain str: TorchVersion is not plain data in a checkpoint
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        # the numbers depend on the intra-op thread count (not on the executor): both recorded
        "threads": torch.get_num_threads(),
        "executor": os.environ.get("EQUSS_EXECUTOR") or "serial",  # set by equss.paper.jobs in a worker
    }
    info.update(extra)
    return info
