"""Progress where the user is: concise, rate-limited lines into the runner's progress log
(nothing in the executed notebook), tqdm elsewhere; the runner echoes the log."""
from __future__ import annotations

import time

import pytest

from equss import progress
from equss.paper import notebooks as runner


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "progress.log"
    monkeypatch.setenv(progress.LOG_ENV, str(path))
    monkeypatch.setenv(progress.INTERVAL_ENV, "3600")
    return path


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_log_bar_writes_start_and_end_only(log):
    bar = progress.bar(total=1000, desc="train camvid-equss")
    assert isinstance(bar, progress.LogBar)
    for _ in range(1000):
        bar.update(1)
        bar.set_postfix(loss="0.1")  # tqdm refreshes on every postfix; the log must not
    bar.close()
    out = lines(log)
    assert len(out) == 2, out
    assert out[0].startswith("train camvid-equss: 0/1000 (0%)") and "ETA" in out[0]
    assert out[1].startswith("train camvid-equss: 1000/1000 (100%)") and "loss=0.1" in out[1]


def test_log_bar_rate(log, monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0.05")
    for _ in progress.bar(range(6), desc="eval"):
        time.sleep(0.06)
    out = lines(log)
    assert 5 <= len(out) <= 8 and out[-1].startswith("eval: 6/6 (100%)"), out


def test_log_bar_write_leave_false_and_unknown_total(log):
    bar = progress.bar(total=3, desc="indexing", leave=False)
    bar.update(3)
    bar.write("step 3: val cluster mIoU 9.16")
    bar.close()
    for _ in progress.bar(iter(range(4)), desc="blocks"):
        pass
    progress.note("run camvid-equss: cached")
    out = lines(log)
    assert out[0].startswith("indexing: 0/3") and "step 3: val cluster mIoU 9.16" in out
    assert any(line.startswith("indexing: 3/3 (100%)") for line in out)
    assert any(line.startswith("blocks: 4 it,") for line in out) and out[-1] == "run camvid-equss: cached"


def test_without_runner_it_is_tqdm(monkeypatch, capsys):
    monkeypatch.delenv(progress.LOG_ENV, raising=False)
    from tqdm.auto import tqdm

    bar = progress.bar(total=2, desc="x", disable=True)
    assert isinstance(bar, tqdm) and not isinstance(bar, progress.LogBar)
    progress.note("nothing")  # no log: nowhere
    assert capsys.readouterr().out == ""


def test_runner_echoes_the_log(tmp_path, capsys):
    path = tmp_path / "p.log"
    echo = runner._ProgressEcho(path)
    echo.start()
    with open(path, "a") as fh:
        fh.write("train camvid-equss: 3/300 (1%), 00:03 elapsed, ETA 04:57\nhalf a li")
    time.sleep(1.2)
    with open(path, "a") as fh:
        fh.write("ne\n")
    echo.stop()
    assert capsys.readouterr().out.splitlines() == ["  train camvid-equss: 3/300 (1%), 00:03 elapsed, ETA 04:57",
                                                   "  half a line"]
