"""The tuning stage (equss.paper.tuning): every arm tuned by one rule, the choice the argmax of its
recorded validation numbers, the choice carried into runs.setup's configs, a finished arm never
trained again, a record of other code never reused.  Real smoke-scale tunings (the smoke data,
2 steps per candidate) on two arms of the two proxy datasets."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from equss.config import load_config
from equss.errors import EqussError
from equss.paper import runs, tuning
from equss.pipeline.tune import parse_level
from equss.provenance import running_code_fingerprint

ARMS = ["camvid-equss", "dubai-M1"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """``(out, cfg, records, doc)``: two arms tuned at smoke scale into one results folder."""
    out = tmp_path_factory.mktemp("tuning-results")
    _, cfg = runs.setup("smoke", str(out), device="cpu")
    rule = tuning.rule("smoke")
    records = tuning.tune_all(cfg, out, ARMS, rule, progress=False)
    return out, cfg, records, tuning.write(out, records)


@pytest.fixture()
def tune_calls(monkeypatch):
    """Every call of equss.pipeline.tune.tune (still run for real)."""
    from equss.pipeline import tune as tune_module

    calls, real = [], tune_module.tune

    def spy(cfg, out, *a, **k):
        calls.append(cfg.name)
        return real(cfg, out, *a, **k)

    monkeypatch.setattr(tune_module, "tune", spy)
    return calls


def test_every_arm_is_tuned_by_the_same_rule(tuned):
    out, _, records, doc = tuned
    rule = tuning.rule("smoke")
    assert rule["steps_per_candidate"] == 2 and len(rule["levels"]) >= 2
    for arm in ARMS:
        rec = json.loads((out / "tuning" / arm / "tune.json").read_text())  # the record, as committed
        assert rec == records[arm]
        assert [str(x) for x in rec["levels"]] == rule["levels"]
        assert rec["steps_per_candidate"] == 2
        assert [c["level"] for c in rec["candidates"]] == rule["levels"]
        config = rec["provenance"]["config"]
        assert config["name"] == arm and config["train"]["seed"] == 0 and config["train"]["steps"] == 2
        assert (config["data"]["train_split"], config["data"]["val_split"]) == ("train", "val")
        assert rec["provenance"]["code_fingerprint"] == running_code_fingerprint()
    assert {records[a]["provenance"]["config"]["data"]["dataset"] for a in ARMS} == {"camvid", "dubai_aerial"}
    assert doc["rule"]["levels"] == rule["levels"] and doc["rule"]["steps_per_candidate"] == 2
    assert sorted(p.name for p in (out / "tuning").rglob("*") if p.is_file()) == ["tune.json"] * len(ARMS)  # no checkpoints
    arms = json.loads((out / "tuning.json").read_text())["arms"]
    assert arms.keys() == set(ARMS) | {"camvid-Q3"}  # Q3 is camvid-equss under another name
    assert arms["camvid-Q3"] == {**arms["camvid-equss"], "same_as": "camvid-equss"}


def test_the_choice_is_the_argmax_of_validation(tuned):
    out, _, _, _ = tuned
    doc = json.loads((out / "tuning.json").read_text())
    for arm in ARMS:
        rec = json.loads((out / doc["arms"][arm]["record"]).read_text())
        vals = np.array([c["val"]["cluster_mIoU"] for c in rec["candidates"]])
        best = rec["candidates"][int(np.argmax(vals))]
        got = doc["arms"][arm]
        assert got["level"] == best["level"] and got["val_cluster_mIoU"] == vals.max()
        assert got["shifts"] == {k: best[k] for k in tuning.SHIFTS}
        checked = 0
        for c in rec["candidates"]:  # each candidate's shift is its term's fd quantile at its level (train split)
            for term, q in zip(("pos_intra", "pos_inter", "neg_inter"), parse_level(c["level"])):
                if f"{q:g}" in rec["fd_quantiles"][term]:  # the record's table: 4 decimals, the shift: 3
                    assert abs(c[f"{term}_shift"] - rec["fd_quantiles"][term][f"{q:g}"]) <= 6e-4
                    checked += 1
        assert checked >= 3
        assert rec["provenance"]["split"] == "val"  # selected on validation


def test_setup_carries_the_tuned_shifts_and_keywords_win(tuned):
    out, _, _, doc = tuned
    shifts = {a: doc["arms"][a]["shifts"] for a in ARMS}
    expected = [f"loss.{k}={float(shifts['camvid-equss'][k])!r}" for k in tuning.SHIFTS]
    assert tuning.tuned_overrides(out, "camvid-equss") == expected
    assert tuning.tuned_overrides(out, "camvid-Q3") == expected  # Table 3's Q3 is camvid-equss
    assert load_config("camvid-Q3", "proxy").key() == load_config("camvid-equss", "proxy").key()

    _, cfg = runs.setup("proxy", str(out), device="cpu")
    for paper, arm in (("cocostuff27-equss", "camvid-equss"), ("cocostuff27-Q3", "camvid-equss"),
                       ("cityscapes27-equss", "camvid-equss"), ("potsdam3-M1", "dubai-M1")):
        loss = cfg(paper, 1).loss
        assert {k: getattr(loss, k) for k in tuning.SHIFTS} == shifts[arm], paper
    fig6 = cfg("cityscapes27-equss", 0, **{"model.num_codebooks": 8})  # derived by keyword: its preset's shifts
    assert fig6.loss.pos_intra_shift == shifts["camvid-equss"]["pos_intra_shift"]
    kept = cfg("cocostuff27-equss", 0, **{"loss.pos_intra_shift": 0.123})  # a notebook keyword wins
    assert kept.loss.pos_intra_shift == 0.123
    assert kept.loss.neg_inter_shift == shifts["camvid-equss"]["neg_inter_shift"]
    untuned = load_config("camvid-stego", "proxy").loss  # not tuned in this folder: the preset's own
    assert cfg("cocostuff27-stego").loss.pos_inter_shift == untuned.pos_inter_shift
    _, smoke = runs.setup("smoke", str(out), device="cpu")  # only the proxy scale takes tuned shifts
    assert smoke("cocostuff27-equss").loss.pos_intra_shift == load_config("camvid-equss", "smoke").loss.pos_intra_shift


def test_a_second_call_trains_nothing(tuned, tune_calls, monkeypatch, tmp_path):
    out, cfg, records, _ = tuned
    rule = tuning.rule("smoke")
    assert tuning.tune_all(cfg, out, ARMS, rule, progress=False) == records
    other = tmp_path / "other-results"  # another results folder: from the cache
    assert tuning.tune_all(cfg, other, ARMS, rule, progress=False) == records
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "empty-cache"))  # a later session: the committed records
    assert tuning.tune_all(cfg, out, ARMS, rule, progress=False) == records
    assert tune_calls == []


def test_a_record_of_other_code_or_rule_is_not_reused(tuned, monkeypatch, tmp_path):
    out, cfg, records, _ = tuned
    from equss.pipeline import tune as tune_module

    calls = []

    def fake_tune(c, folder, levels, steps, progress=True):  # stands in for a training: writes the real record
        calls.append((c.name, list(levels), steps))
        Path(folder).mkdir(parents=True)
        (Path(folder) / "tune.json").write_text(json.dumps(records[c.name]))

    monkeypatch.setattr(tune_module, "tune", fake_tune)
    monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / "empty-cache"))
    results = tmp_path / "results"
    shutil.copytree(out / "tuning", results / "tuning")
    path = results / "tuning" / "dubai-M1" / "tune.json"
    stale = json.loads(path.read_text())
    stale["provenance"]["code_fingerprint"] = "000000000000"
    path.write_text(json.dumps(stale))
    rule = tuning.rule("smoke")
    tuning.tune_all(cfg, results, ARMS, rule, progress=False)
    assert calls == [("dubai-M1", rule["levels"], 2)]  # camvid-equss's record is reused, dubai-M1's is not
    assert json.loads(path.read_text())["provenance"]["code_fingerprint"] == running_code_fingerprint()

    calls.clear()  # another rule (more steps): nothing of the smoke rule counts
    tuning.tune_all(cfg, results, ["camvid-equss"], {**rule, "steps_per_candidate": 3}, progress=False)
    assert calls == [("camvid-equss", rule["levels"], 3)]


def test_tuned_overrides_without_a_choice(tuned, tmp_path, monkeypatch):
    out, _, records, _ = tuned
    assert tuning.tuned_overrides(out, "camvid-stego") == []  # not tuned in that folder
    assert tuning.tuned_overrides(out, "folder-equss") == []
    monkeypatch.setattr(tuning, "COMMITTED", tmp_path / "committed")
    assert tuning.tuned_overrides(tmp_path / "missing", "camvid-equss") == []  # no file, no committed one
    assert tuning.source(tmp_path / "missing") is None
    (tmp_path / "committed" / "proxy").mkdir(parents=True)
    shutil.copyfile(out / "tuning.json", tmp_path / "committed" / "proxy" / "tuning.json")
    # a user's results folder without its own file takes the committed choice (as the step count does) ...
    assert tuning.tuned_overrides(tmp_path / "missing", "camvid-equss") == tuning.tuned_overrides(out, "camvid-equss") != []
    assert tuning.tuned_overrides(tmp_path / "missing", "camvid-equss", committed=False) == []
    own = tmp_path / "own"  # ... and its own file wins
    tuning.write(own, {"camvid-equss": records["camvid-equss"]})
    assert tuning.tuned_overrides(own, "dubai-M1") == [] and tuning.tuned_overrides(tmp_path / "missing", "dubai-M1") != []


def test_arms_of_different_rules_are_refused(tuned, tmp_path):
    _, _, records, _ = tuned
    other = json.loads(json.dumps(records["dubai-M1"]))
    other["steps_per_candidate"] = 150
    with pytest.raises(EqussError, match="different rules") as err:
        tuning.write(tmp_path, {"camvid-equss": records["camvid-equss"], "dubai-M1": other})
    assert "\n" not in str(err.value)
    with pytest.raises(EqussError, match="not a tuned arm: camvid-M9"):
        tuning.tune_all(None, tmp_path, ["camvid-M9"], tuning.rule("smoke"))


def test_the_arms_and_the_rule():
    """Every arm is a proxy preset reached from its paper preset; dubai-M1 is dubai-equss with STEGO's head
    (70-d, no PQ); the rule is one at proxy and paper scale and the smaller one only at smoke."""
    for arm, paper in tuning.ARMS.items():
        assert runs.preset_for(paper, "proxy") == arm
        assert load_config(arm, "smoke").name == load_config(arm, "proxy").name == arm
    m1, equss = load_config("dubai-M1", "proxy"), load_config("dubai-equss", "proxy")
    assert (m1.model.head_dim, m1.model.pq) == (70, False)
    assert m1.data == equss.data and m1.train == equss.train and m1.loss == equss.loss
    assert tuning.rule("proxy") == tuning.rule("paper") == {
        "levels": ["0.5", "0.65", "0.8", "0.9", "0.8,0.8,0.9"], "steps_per_candidate": 150, "seed": 0}
    assert tuning.arms_for("proxy") == list(tuning.ARMS) and tuning.arms_for("paper") == []
    assert set(tuning.arms_for("smoke")) <= set(tuning.ARMS)
    assert tuning.rule_hash(tuning.rule("smoke")) != tuning.rule_hash(tuning.rule("proxy"))


@pytest.mark.slow
def test_the_pool_tunes_the_arms_as_the_serial_path_does(tmp_path, monkeypatch):
    """`equss reproduce tuning --executor local --workers 2 --threads 1`: the arms fanned out over two
    worker processes give exactly the candidates' validation numbers of the serial path at 1 thread."""
    import torch

    from equss.paper import executor

    found = {}
    for name, env in (("serial", {}), ("pool", executor.run_options("local", 2, 1))):
        monkeypatch.setenv("EQUSS_CACHE", str(tmp_path / f"cache-{name}"))
        for k in executor.ENV.values():
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out = tmp_path / name
            _, cfg = runs.setup("smoke", str(out), device="cpu")
            records = executor.tune_arms(cfg, out, ARMS, tuning.rule("smoke"), progress=False)
        finally:
            torch.set_num_threads(threads)
        found[name] = {a: [(c["level"], c["val"]) for c in r["candidates"]] for a, r in records.items()}
    assert found["pool"] == found["serial"]
