"""tools/budget.py: each training and evaluation is charged once, to the first artefact that names it."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import budget  # noqa: E402


def _record(results: Path, run: str, train_s: float | None, evals: dict[str, float]):
    r = results / "runs" / run
    r.mkdir(parents=True)
    if train_s is not None:
        (r / "provenance.json").write_text(json.dumps({"wall_s": train_s}))
    for name, s in evals.items():
        (r / name).write_text(json.dumps({"cluster": {}, "provenance": {"wall_s": s}}))


def _csv(results: Path, name: str, rows: list[tuple[str, str]]):
    (results / f"{name}.csv").write_text("method,run,eval\n" + "".join(f"x,{r},{e}\n" for r, e in rows))


def test_shared_runs_are_charged_once(tmp_path):
    _record(tmp_path, "a", 100.0, {"eval.json": 10.0, "eval_crf.json": 50.0, "fig4.json": 7.0})
    _record(tmp_path, "b", 200.0, {"eval.json": 20.0})
    _record(tmp_path, "baseline-a", None, {"baseline.json": 30.0})
    _csv(tmp_path, "table1", [("a", "eval.json"), ("a", "eval_crf.json"), ("b", "eval.json"),
                              ("baseline-a", "baseline.json")])
    _csv(tmp_path, "fig4", [("a", "fig4.json"), ("a", "fig4.json"), ("b", "eval.json")])  # Table 1's trainings
    (tmp_path / "claims.csv").write_text("claim,run\nx,a\n")  # derived: never charged
    (tmp_path / "reproduce.json").write_text(json.dumps({"wall_s": 3600.0, "finished": True, "segments": [{}]}))

    items = {i["name"]: i for i in budget.attribute(tmp_path)}
    assert list(items) == ["table1", "fig4"]  # make reproduce's order, not the alphabet
    assert items["table1"] == {"name": "table1", "trainings": 2, "train_s": 300.0, "evals": 4, "eval_s": 110.0}
    assert items["fig4"] == {"name": "fig4", "trainings": 0, "train_s": 0.0, "evals": 1, "eval_s": 7.0}

    text = budget.report(tmp_path)
    assert "| **all** | 2 | 0.08 | 5 | 0.03 | 0.12 |" in text  # 300 s, 117 s, 417 s
    assert "wall time (finished, 1 segment(s)): 1.00 h; the records account for 0.12 h" in text


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert budget.main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().out.count("\n") == 1


def test_pauses_are_subtracted_from_the_rest(tmp_path):
    _record(tmp_path, "a", 1800.0, {"eval.json": 600.0})
    _csv(tmp_path, "table1", [("a", "eval.json")])
    (tmp_path / "reproduce.json").write_text(json.dumps({"wall_s": 7200.0, "finished": False, "segments": [{}, {}]}))
    (tmp_path / "reproduce_pauses.log").write_text(
        "# comment\n"
        "2026-11-29T06:40:00Z SIGSTOP kernel 1 (table2)\n"
        "2026-11-29T06:58:00Z SIGCONT kernel 1\n"      # 18 min
        "restart 2026-11-29T07:00:00Z\n"                # not a pause line
        "2026-11-29T07:10:00Z SIGSTOP kernel 1\n"
        "2026-11-29T07:10:30Z SIGSTOP again\n"          # a second stop does not restart the clock
        "2026-11-29T07:22:00Z SIGCONT\n"                # 12 min
        "2026-11-29T08:00:00Z SIGSTOP never continued\n")
    assert budget.paused_s(tmp_path) == 30 * 60
    text = budget.report(tmp_path)
    # 2 h wall, 0.5 h paused, 1.5 h running; records 2400 s = 0.67 h; rest 7200 - 1800 - 2400 s = 0.83 h
    assert "2.00 h, of which 0.50 h paused (`reproduce_pauses.log`), 1.50 h running" in text
    assert "the records account for 0.67 h, the rest (0.83 h)" in text


def test_a_pause_inside_a_record_is_not_charged_twice(tmp_path):
    # training 10:00-11:00 (stamped at its end), paused 10:20-10:40 inside it; evaluation 11:00-11:10
    r = tmp_path / "runs" / "a"
    r.mkdir(parents=True)
    (r / "provenance.json").write_text(json.dumps({"wall_s": 3600.0, "time_utc": "2026-11-29T11:00:00+00:00"}))
    (r / "eval.json").write_text(json.dumps({"provenance": {"wall_s": 600.0, "time_utc": "2026-11-29T11:10:00+00:00"}}))
    _csv(tmp_path, "table1", [("a", "eval.json")])
    (tmp_path / "reproduce_pauses.log").write_text("2026-11-29T10:20:00Z SIGSTOP\n2026-11-29T10:40:00Z SIGCONT\n"
                                                   "2026-11-29T11:30:00Z SIGSTOP\n2026-11-29T11:45:00Z SIGCONT\n")
    (tmp_path / "reproduce.json").write_text(json.dumps({"wall_s": 7200.0, "finished": True, "segments": [{}]}))
    item = budget.attribute(tmp_path)[0]
    assert item["train_s"] == 2400.0 and item["eval_s"] == 600.0  # the 20 min pause left out of the training
    text = budget.report(tmp_path)
    # wall 2 h, paused 35 min; records 50 min; rest 120 - 35 - 50 = 35 min = 0.58 h
    assert "of which 0.58 h paused" in text and "the records account for 0.83 h, the rest (0.58 h)" in text


def test_one_cached_run_filed_under_two_names_is_charged_once(tmp_path):
    _record(tmp_path, "camvid-equss-seed0-k1", 100.0, {"eval.json": 10.0})
    _record(tmp_path, "camvid-Q3-seed0-k1", 100.0, {"eval.json": 10.0})  # the same run's record, copied
    _record(tmp_path, "camvid-M3-seed0-k2", 300.0, {"eval.json": 10.0})  # a different run, same eval time
    (tmp_path / "runs" / "camvid-M3-seed0-k2" / "eval.json").write_text(
        json.dumps({"cluster": {"mIoU": 1.0}, "provenance": {"wall_s": 10.0}}))
    _csv(tmp_path, "table1", [("camvid-equss-seed0-k1", "eval.json")])
    _csv(tmp_path, "table3", [("camvid-M3-seed0-k2", "eval.json"), ("camvid-Q3-seed0-k1", "eval.json")])
    items = {i["name"]: i for i in budget.attribute(tmp_path)}
    assert items["table1"] == {"name": "table1", "trainings": 1, "train_s": 100.0, "evals": 1, "eval_s": 10.0}
    assert items["table3"] == {"name": "table3", "trainings": 1, "train_s": 300.0, "evals": 1, "eval_s": 10.0}
