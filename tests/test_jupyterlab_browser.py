"""An executed notebook keeps its figure and no progress output, and JupyterLab shows that
figure in a real browser.

Fig. 6 is executed at smoke scale (one M x K cell) by the same runner as ``make
reproduce-fig6``.  The browser check starts JupyterLab headless on a free localhost port,
opens the executed notebook in Chromium (selenium + chromedriver; skipped where they are
absent: ``apt-get install chromium chromium-driver``) and waits for the figure's ``<img>``
in an output area.  The same check opens the committed proxy-scale
``results/proxy/notebooks/fig6_mk_grid.ipynb`` (a copy, so nothing is written into
``results/``; skipped until the reproduction has made it).  Screenshots go to
``$EQUSS_SCREENSHOT_DIR`` when set (``jupyterlab_fig6_smoke.png``, ``jupyterlab_fig6_proxy.png``;
the README's were made with ``EQUSS_SCREENSHOT_DIR=results``), else into the test's
temporary folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from equss.paper import notebooks as runner

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def executed(data_root, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("smoke-results")
    return runner.execute("fig6_mk_grid", scale="smoke", results=str(results), data_root=str(data_root),
                          extra={"Ms": [4], "Ks": [8]}, progress=False)


def test_executed_notebook_keeps_figure_not_progress(executed):
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    streams = [o for o in outputs if o.output_type == "stream"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the heatmap, inline
    assert len(streams) <= 2, [o.text[:80] for o in streams]  # "writing to ..." (and nothing from the bars)
    assert not any("it/s" in o.text or "ETA" in o.text for o in streams)
    assert (executed.parent.parent / "fig6.png").is_file()  # and saved beside the tables


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_browser() -> tuple[str, str]:
    """Chromium and chromedriver paths, or skip (checked before anything is started)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium.webdriver")
    return chromium, driver


def _browser():
    chromium, driver = _need_browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={Path(os.environ['EQUSS_CACHE']) / 'chromium-profile'}"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver))


@contextlib.contextmanager
def serve(root: Path, tmp_path: Path):
    """JupyterLab serving ``root`` headless on a free localhost port; yields its base URL and token."""
    pytest.importorskip("jupyterlab")
    port, token = _free_port(), "equss-test"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"))
    # no news / update toasts over the notebook (and no network)
    notif = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("JupyterLab exited: " + (tmp_path / "lab.log").read_text()[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 120 s: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def kernel_state(url: str, token: str, notebook: str) -> str | None:
    """The execution state of the kernel of ``notebook``'s session, from the server's REST API (the status
    bar's wording changes between JupyterLab releases; 4.6 no longer writes "Idle" there)."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as r:
        sessions = json.loads(r.read())
    for s in sessions:
        if s.get("path") == notebook and s.get("kernel"):
            return s["kernel"].get("execution_state")
    return None


def figure_shown(url: str, token: str, notebook: str, shot: Path) -> None:
    """Open ``notebook`` (relative to the served root) in Chromium, wait for a PNG ``<img>`` wider than
    100 px in an output area, check it decoded, and save a screenshot with it in view."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get(f"{url}/lab/tree/{notebook}?token={token}")
        imgs = WebDriverWait(driver, 180, poll_frequency=1).until(
            lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
                       if i.get_attribute("src").startswith("data:image/png") and i.size["width"] > 100])
        img = imgs[0]
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
        time.sleep(1)
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


def _shot(tmp_path: Path, scale: str) -> Path:
    return Path(os.environ.get("EQUSS_SCREENSHOT_DIR") or tmp_path) / f"jupyterlab_fig6_{scale}.png"


@pytest.fixture
def jupyterlab(executed, tmp_path):
    """JupyterLab serving the executed smoke results folder."""
    _need_browser()
    with serve(executed.parent.parent, tmp_path) as lab:
        yield lab


def test_jupyterlab_renders_the_figure(jupyterlab, tmp_path):
    url, token = jupyterlab
    figure_shown(url, token, "notebooks/fig6_mk_grid.ipynb", _shot(tmp_path, "smoke"))


def test_committed_proxy_fig6_shows_its_heatmap(tmp_path):
    """The done-when of the Jupyter issue: the committed proxy Fig. 6 notebook, opened in JupyterLab,
    shows the heatmap (its papermill run completed at proxy scale, one inline PNG, in JupyterLab)."""
    committed = ROOT / "results" / "proxy" / "notebooks" / "fig6_mk_grid.ipynb"
    if not committed.is_file():
        pytest.skip("results/proxy/notebooks/fig6_mk_grid.ipynb is not committed yet (make reproduce-fig6 SCALE=proxy)")
    _need_browser()
    nb = nbformat.read(committed, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["scale"] == "proxy"
    assert {c.metadata.get("papermill", {}).get("status") for c in nb.cells} == {"completed"}
    heatmaps = [c for c in nb.cells if "fig6.png" in c.source
                and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(heatmaps) == 1
    served = tmp_path / "served"
    (served / "notebooks").mkdir(parents=True)
    shutil.copy(committed, served / "notebooks")  # JupyterLab writes nothing into results/
    with serve(served, tmp_path) as (url, token):
        figure_shown(url, token, "notebooks/fig6_mk_grid.ipynb", _shot(tmp_path, "proxy"))


def test_opening_and_saving_every_committed_executed_notebook_changes_nothing(tmp_path):
    """Open each committed executed notebook in JupyterLab (its kernel starts), save it with Ctrl+S, and find
    ``git status`` clean: the kernelspec is the installed kernel's, no jupytext pairing creates a ``.py``,
    and JupyterLab's layout is the runner's.  Served from a scratch repository holding copies."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    committed = sorted((ROOT / "results").glob("*/notebooks/*.ipynb"))
    if not committed:
        pytest.skip("no executed notebooks committed")
    _need_browser()
    repo = tmp_path / "repo"
    for nb in committed:
        dest = repo / nb.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nb, dest)
    (repo / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", repo / "notebooks")  # the pairing rule of the sources
    shutil.copy(ROOT / ".gitignore", repo)  # (JupyterLab's .ipynb_checkpoints/ are ignored, as in the repository)
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "committed copies"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env={**os.environ, **git})
    saved = []
    with serve(repo, tmp_path / "lab") as (url, token):
        driver = _browser()
        try:
            for nb in committed:
                driver.get(f"{url}/lab/tree/{nb.relative_to(ROOT).as_posix()}?token={token}")
                cells = WebDriverWait(driver, 180, poll_frequency=1).until(
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
                rel = nb.relative_to(ROOT).as_posix()
                WebDriverWait(driver, 120, poll_frequency=1).until(  # the kernel started (and its spec is known)
                    lambda d: kernel_state(url, token, rel) == "idle")
                path = repo / nb.relative_to(ROOT)
                before = path.stat().st_mtime_ns
                panel = driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel-notebook")
                driver.execute_script("arguments[0].focus()", panel)
                ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
                WebDriverWait(driver, 60, poll_frequency=0.5).until(lambda d: path.stat().st_mtime_ns != before)
                saved.append(path.name)
        finally:
            driver.quit()
    assert len(saved) == len(committed) and len(cells) > 0  # every notebook was opened and saved by JupyterLab
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "", status


def conclusion_and_figure_shown(url: str, token: str, notebook: str, artefact: str, shot: Path) -> None:
    """Open ``notebook`` in Chromium and wait for both its computed conclusion ("What <artefact> shows", a
    rendered Markdown output) and an inline PNG figure; save a screenshot of the conclusion."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get(f"{url}/lab/tree/{notebook}?token={token}")
        WebDriverWait(driver, 180, poll_frequency=1).until(
            lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
                       if i.get_attribute("src").startswith("data:image/png") and i.size["width"] > 100])
        found = WebDriverWait(driver, 180, poll_frequency=1).until(
            lambda d: [m for m in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output.jp-RenderedMarkdown")
                       if f"What {artefact} shows" in m.text])
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found[0])
        time.sleep(1)
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def executed_table1(data_root, executed) -> Path:
    """Table 1 at smoke scale, into the same results folder as the Fig. 6 notebook (the claims see both)."""
    return runner.execute("table1_cocostuff", scale="smoke", results=str(executed.parent.parent),
                          data_root=str(data_root), progress=False)


def test_table1_and_fig6_show_their_conclusion_and_the_paper_beside_the_proxy(executed, executed_table1, tmp_path):
    """The reader's companion (issue 22's done-when): Table 1 and Fig. 6, opened in JupyterLab, show the
    figure with the paper's values on it and end with the conclusion computed from the claims."""
    _need_browser()
    for nb, artefact in ((executed_table1, "Table 1"), (executed, "Fig. 6")):
        cells = nbformat.read(nb, as_version=4).cells
        assert "What to look for" in cells[0].source  # opens with what to look for
        assert any("paper" in o.get("data", {}).get("text/plain", "") or "paper" in c.source
                   for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    with serve(executed.parent.parent, tmp_path) as (url, token):
        for nb, artefact in ((executed_table1, "Table 1"), (executed, "Fig. 6")):
            shot = Path(os.environ.get("EQUSS_SCREENSHOT_DIR") or tmp_path) / f"jupyterlab_{nb.stem}_conclusion.png"
            conclusion_and_figure_shown(url, token, f"notebooks/{nb.name}", artefact, shot)
