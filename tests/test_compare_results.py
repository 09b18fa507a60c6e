"""tools/compare_results.py: matching rows by configuration, exact comparison of every measurement."""
import csv
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import compare_results  # noqa: E402

COLS = ["method", "dataset", "seed", "crf", "run", "eval", "unsup_acc", "unsup_miou", "linear_acc",
        "linear_miou", "source"]


def _write(folder: Path, rows: list[list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "table1.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLS)
        w.writerows(rows)
    return folder


ROWS = [
    ["STEGO", "camvid", 0, False, "camvid-stego-seed0-aaa", "eval.json", 50.1, 20.25, 78.5, 31.0, "measured"],
    ["STEGO", "camvid", 0, True, "camvid-stego-seed0-aaa", "eval_crf.json", 51.0, 21.5, 79.0, 32.0, "measured"],
    ["EQUSS", "camvid", 1, False, "camvid-equss-seed1-bbb", "eval.json", 55.0, 24.0, 80.0, 33.0, "measured"],
    ["STEGO", "CocoStuff-27", "", "", "", "", 56.9, 28.2, 76.1, 41.0, "quoted"],
]


def test_identical_folders_match_every_cell(tmp_path):
    a, b = _write(tmp_path / "a", ROWS), _write(tmp_path / "b", ROWS[::-1])
    status, lines = compare_results.compare(a, b)
    assert status == 0
    assert lines[0] == "table1: 3 rows matched, 12 cells identical, 0 differ"  # quoted row ignored


def test_one_changed_cell_is_named(tmp_path):
    changed = [list(r) for r in ROWS]
    changed[1][7] = 21.500001  # unsup_miou of STEGO seed 0 with CRF
    status, lines = compare_results.compare(_write(tmp_path / "a", changed), _write(tmp_path / "b", ROWS))
    assert status == 1
    assert lines[0] == "table1: 3 rows matched, 11 cells identical, 1 differ"
    assert len(lines) == 2 and "crf=True" in lines[1] and "seed=0" in lines[1] and "unsup_miou" in lines[1]
    assert "+1e-06" in lines[1]


def test_other_seeds_are_not_compared_and_nothing_common_is_status_2(tmp_path):
    only_seed5 = [list(ROWS[0])]
    only_seed5[0][2] = 5
    status, lines = compare_results.compare(_write(tmp_path / "a", only_seed5), _write(tmp_path / "b", ROWS))
    assert status == 2 and "no row" in lines[-1]


def test_a_different_run_name_is_reported_not_failed(tmp_path):
    renamed = [list(r) for r in ROWS]
    renamed[2][4] = "camvid-equss-seed1-ccc"
    status, lines = compare_results.compare(_write(tmp_path / "a", renamed), _write(tmp_path / "b", ROWS))
    assert status == 0
    assert any("camvid-equss-seed1-ccc vs camvid-equss-seed1-bbb" in line for line in lines)


def test_cli_missing_folder_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "compare_results.py"), str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stdout.strip().count("\n") == 0 and "is not a folder" in p.stdout and not p.stderr
