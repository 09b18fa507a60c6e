"""Execute a reproduction notebook with papermill (the engine behind ``equss reproduce``,
:mod:`equss.pipeline.reproduce`).

The executed copy goes to ``RESULTS/notebooks/NAME.ipynb``; the notebook itself writes its
tables, figures and provenance to ``RESULTS``.  No machine path is recorded in the executed
notebook: ``results_dir`` is passed relative to the notebooks folder when it lies inside the
repository, and the data root reaches the kernel through ``EQUSS_DATA``, not as a parameter.  Notebooks in ``notebooks/`` are kept without outputs (jupytext pairs them
with ``notebooks/*.py``).

Progress: the notebook's bars write concise lines to a progress log
(:mod:`equss.progress`), which this runner prints on the terminal above papermill's
per-cell bar, so the executed notebook keeps no progress output.

A run that fails (a cell raises) or is interrupted (Ctrl-C, SIGTERM) is recorded in the executed
notebook's metadata (``metadata.equss``: status ``failed`` / ``interrupted``, the error, commit and
code fingerprint), ends with one line and a non-zero exit (1, or 130 / 143 for a signal), and is
never counted as finished: :func:`run_state` says ``finished`` only for a notebook this runner
stamped so after checking every cell ran without error (``tools/commit_results.py`` and the
traceability test read it).  ``--set`` overrides are checked before any kernel starts.

Plan (:func:`plan`, behind ``equss reproduce --plan``): a notebook executed with ``plan_only=True``
into a throwaway copy stops at its ``ex.run_all`` cell after printing and writing its plan (runs
cached / new, the predicted wall time; :mod:`equss.paper.fanout`); nothing trains.

Data: at smoke and proxy scale the notebooks need CamVid.  With no data root given (the
default ``./data``) and no ``./data/CamVid``, CamVid is downloaded there first (progress
bar, checksum); otherwise, or offline, one line says how to point at existing data.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from equss.errors import EqussError

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
USAGE_HINT = "equss reproduce table1 --data-root /path/to/data (the folder that holds CamVid/)"


def ensure_camvid(data_root: str | None = None, download: bool | None = None) -> Path:
    """The data root (absolute) once it holds CamVid; downloads it into the default
    ``./data`` when missing there (``download=None``: only for that default folder)."""
    from equss import paths
    from equss.data.prepare import download_camvid, missing_items

    root = paths.data_root(data_root, must_exist=False).resolve()
    if not missing_items("camvid", root):
        return root
    is_default = root == Path("data").resolve()
    if download is None:
        download = is_default
    if not download:
        raise EqussError(f"no CamVid under {root}; point at the folder that holds CamVid/ ({USAGE_HINT}), "
                         f"or fetch it with: equss prepare camvid --data-root {root} --download")
    print(f"equss: no CamVid under {root}: downloading it (or stop and run {USAGE_HINT})", flush=True)
    try:
        download_camvid(root)
    except EqussError as exc:
        raise EqussError(f"no CamVid under {root} and the download failed ({str(exc).split(';')[0]}); "
                         f"offline, point at existing data: {USAGE_HINT}") from None
    return root


class _ProgressEcho(threading.Thread):
    """Prints the lines appended to the progress log (above any tqdm bar of this process)."""

    def __init__(self, path: Path, prefix: str = "  "):
        super().__init__(daemon=True)
        self.path, self.prefix, self._halt = path, prefix, threading.Event()
        self._pos = 0

    def run(self):
        while not self._halt.wait(0.5):
            self._drain()
        self._drain()

    def _drain(self):
        from tqdm.auto import tqdm  # the class papermill's cell bar uses, so it is redrawn below

        try:
            with open(self.path) as fh:
                fh.seek(self._pos)
                chunk = fh.read()
        except FileNotFoundError:
            return
        complete = chunk[:chunk.rfind("\n") + 1]
        self._pos += len(complete.encode())
        for line in complete.splitlines():
            tqdm.write(self.prefix + line, file=sys.stdout)

    def stop(self):
        self._halt.set()
        self.join()


class NotebookFailed(EqussError):
    """A notebook run that did not finish: its executed copy is stamped failed / interrupted
    (exit 1, or 128 + the signal)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def run_state(nb: dict) -> str:
    """What an executed notebook is: ``finished`` (stamped by this runner after every cell ran
    without error), ``failed`` / ``interrupted`` (stamped, or an error output / failed cell),
    ``executing`` (cells running or pending: papermill saves after every cell), or ``unstamped``
    (every cell completed without error, but not run by this version of the runner)."""
    stamp = (nb.get("metadata") or {}).get("equss") or {}
    if stamp.get("status") in ("failed", "interrupted"):
        return stamp["status"]
    problem = _cell_problem(nb)
    if problem:
        return "executing" if problem.startswith("cell still") else "failed"
    return "finished" if stamp.get("status") == "finished" else "unstamped"


def _cell_problem(nb: dict) -> str | None:
    """The first cell that failed, raised, or did not run; None when every cell completed cleanly."""
    if ((nb.get("metadata") or {}).get("papermill") or {}).get("exception"):
        return "papermill recorded an exception"
    for i, cell in enumerate(nb.get("cells", [])):
        state = ((cell.get("metadata") or {}).get("papermill") or {}).get("status")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            return f"cell {i} raised {errors[0].get('ename')}: {str(errors[0].get('evalue'))[:200]}"
        if state == "failed":
            return f"cell {i} failed"
        if state in ("running", "pending"):
            return f"cell still {state} (cell {i})"
    return None


def _stamp(dst: Path, status: str, error: str | None) -> None:
    """Record the outcome in the executed notebook's metadata (``metadata.equss``), and make the copy
    one that opening in JupyterLab does not change: the installed kernel's spec, no jupytext pairing
    (it would create a ``.py`` beside every executed copy), nbformat's own layout."""
    import nbformat

    from equss.provenance import provenance
    from equss.safeio import write_atomic

    try:
        nb = nbformat.read(dst, as_version=4)
    except Exception:  # noqa: BLE001 - papermill never wrote it (or half of it): nothing to mark
        return
    prov = provenance()
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:  # papermill's injected parameters shown collapsed, like the parameters cell
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    pm_meta = nb.metadata.get("papermill") or {}
    for key in ("input_path", "output_path"):  # machine paths: repository-relative, else the file's name in RESULTS
        if pm_meta.get(key):
            path = Path(pm_meta[key]).resolve()
            try:
                pm_meta[key] = str(path.relative_to(NOTEBOOK_DIR.parent))
            except ValueError:
                pm_meta[key] = f"{path.parent.name}/{path.name}"
    nb.metadata["kernelspec"] = installed_kernelspec()
    nb.metadata["equss"] = {
        "status": status, "error": error, "git_commit": prov.get("git_commit"),
        "code_fingerprint": prov.get("code_fingerprint"), "time": prov.get("time")}
    text = nbformat.writes(nb)
    write_atomic(dst, lambda fh: fh.write(text if text.endswith("\n") else text + "\n"))


def installed_kernelspec() -> dict:
    """The ``python3`` kernel's spec as JupyterLab will write it into a notebook it saves."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
        return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
    except Exception:  # noqa: BLE001 - no jupyter_client: ipykernel's default
        return {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def check_overrides(overrides: list[str], scale: str) -> None:
    """``--set`` values checked against the configuration's fields and ranges before any kernel
    starts (one EqussError line per problem, not a papermill traceback per notebook)."""
    from equss.config import load_config

    if overrides:
        load_config(None, scale, overrides=list(overrides))


def declares_runs(name: str) -> bool:
    """Whether notebook ``name`` declares runs (calls ``ex.run_all``); ``claims`` trains nothing."""
    src = NOTEBOOK_DIR / f"{name}.ipynb"
    try:
        nb = json.loads(src.read_text())
    except (OSError, ValueError):
        return False
    return any("run_all(" in "".join(c.get("source", [])) for c in nb.get("cells", []) if c.get("cell_type") == "code")


def plan(name: str, scale: str = "proxy", results: str | None = None, data_root: str | None = None,
         device: str = "auto", extra: dict | None = None, progress: bool = True) -> dict | None:
    """The plan of notebook ``name`` (``equss reproduce --plan``): the notebook is executed with
    ``plan_only=True`` up to its ``run_all`` cell, which prints the plan, writes it to
    ``$EQUSS_PLAN_DIR/<its run_all name>.json`` (:mod:`equss.paper.fanout`) and stops it; nothing runs, nothing
    is written into the results folder but its empty ``runs/``.  None for a notebook that
    declares no runs."""
    from equss.paper.fanout import PLAN_DIR_ENV

    if not declares_runs(name):
        return None
    folder = os.environ.get(PLAN_DIR_ENV)
    if not folder:
        raise EqussError(f"plan: {PLAN_DIR_ENV} is not set (equss reproduce --plan sets it)")
    before = {p: p.stat().st_mtime_ns for p in Path(folder).glob("*.json")}

    def planned() -> list[Path]:  # the plan file this notebook wrote (named by its run_all call)
        return [p for p in Path(folder).glob("*.json") if before.get(p) != p.stat().st_mtime_ns]

    with tempfile.TemporaryDirectory(prefix=f"equss-plan-{name}-") as tmp:
        try:
            execute(name, scale, results, data_root, device, {**(extra or {}), "plan_only": True}, progress,
                    copy=Path(tmp) / f"{name}.ipynb")
        except NotebookFailed:
            if not planned():  # written just before PlanOnly stops the notebook: anything else failed
                raise
    done = planned()
    if not done:
        raise EqussError(f"plan: notebook {name} ran to its end without planning its runs (no ex.run_all with "
                         "plan_only); nothing to show")
    return json.loads(done[0].read_text())


def execute(name: str, scale: str = "proxy", results: str | None = None, data_root: str | None = None,
            device: str = "auto", extra: dict | None = None, progress: bool = True, copy: Path | None = None) -> Path:
    """Execute notebook ``name`` with papermill into ``RESULTS/notebooks/NAME.ipynb`` (``copy``: there
    instead, unstamped: the plan's throwaway copy)."""
    import papermill as pm

    from equss import progress as progress_mod

    from equss import paths

    src = NOTEBOOK_DIR / f"{name}.ipynb"
    if not src.is_file():
        raise EqussError(f"no notebook {src}; valid: {', '.join(p.stem for p in sorted(NOTEBOOK_DIR.glob('*.ipynb')))}")
    results_path = Path(results or f"results/{scale}").resolve()
    params = {"scale": scale, "results_dir": _portable(results_path), "device": device}
    # the data root, resolved once, reaches the kernel as EQUSS_DATA (no machine path in the notebook)
    from equss.data.synthetic import smoke_data_root

    if scale == "smoke":
        root = smoke_data_root(data_root).resolve()
    elif scale == "proxy" and copy is None:
        root = ensure_camvid(data_root)
    else:  # a plan downloads nothing (missing data: its sizes are unknown, and it says so)
        root = paths.data_root(data_root, must_exist=False).resolve() if data_root or os.environ.get("EQUSS_DATA") \
            or scale == "proxy" else None
    params.update(extra or {})
    dst = copy or results_path / "notebooks" / f"{name}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if copy is None:
        print(f"equss: executing notebooks/{name}.ipynb at {scale} scale -> {dst}", flush=True)

    log = Path(tempfile.mkstemp(prefix=f"equss-progress-{name}-", suffix=".log")[1])
    old = os.environ.get(progress_mod.LOG_ENV)
    old_data = os.environ.get("EQUSS_DATA")
    os.environ[progress_mod.LOG_ENV] = str(log)  # the kernel inherits it
    if root is not None:
        os.environ["EQUSS_DATA"] = str(root)
    echo = _ProgressEcho(log)
    if progress:
        echo.start()
    status, error, code = "finished", None, 1
    old_term = _sigterm_as_interrupt()
    try:
        pm.execute_notebook(str(src), str(dst), parameters=params, cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                            progress_bar={"desc": f"{name} (cells)", "unit": "cell"} if progress and copy is None
                            else False,
                            # the kernel's own log ("running over TCP without encryption", "KeyboardInterrupt
                            # caught in kernel" at shutdown) is noise here; errors in cells still stop the run
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except _Terminated:
        status, error, code = "interrupted", "stopped by SIGTERM", 128 + signal.SIGTERM
    except KeyboardInterrupt:
        status, error, code = "interrupted", "stopped by Ctrl-C (SIGINT)", 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - papermill's execution error, a dead kernel, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])
        error = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', first[-1])}"[:300]
        status = "failed"
    finally:
        try:
            signal.signal(signal.SIGTERM, old_term)
        except ValueError:  # not the main thread
            pass
        if progress:
            echo.stop()
        for var, value in ((progress_mod.LOG_ENV, old), ("EQUSS_DATA", old_data)):
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        log.unlink(missing_ok=True)
    if status == "finished":  # papermill said done: check every cell anyway (a swallowed interrupt)
        try:
            problem = _cell_problem(json.loads(dst.read_text()))
        except (OSError, ValueError) as exc:
            problem = f"executed notebook unreadable ({type(exc).__name__})"
        if problem:
            status, error = "failed", problem
    if copy is None:
        _stamp(dst, status, error)
    if status != "finished":
        if copy is not None:
            raise NotebookFailed(f"notebook {name} {status} ({error})", code)
        raise NotebookFailed(f"notebook {name} {status} ({error}); {dst} is marked {status} and counts as "
                             "not run; fix the cause and run it again", code)
    return dst


def _portable(path: Path) -> str:
    """``path`` relative to the notebooks folder (the kernel's working directory) when it lies in
    the repository, so the executed notebook names no machine path; else as given."""
    try:
        path.relative_to(NOTEBOOK_DIR.parent)
    except ValueError:
        return str(path)
    return os.path.relpath(path, NOTEBOOK_DIR)


class _Terminated(BaseException):
    pass


def _sigterm_as_interrupt():
    """SIGTERM stops the run like Ctrl-C (and is recorded): returns the previous handler."""
    def handler(signum, frame):
        raise _Terminated()
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return signal.getsignal(signal.SIGTERM)
