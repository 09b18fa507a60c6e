"""The README's own examples: the CLI block runs line by line, the Python block runs as is."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from equss import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def cli_lines() -> list[str]:
    block = next(b for b in blocks("bash") if "equss weights" in b)
    return [line for line in block.splitlines() if line.startswith("equss ")]


@pytest.mark.slow
def test_readme_cli_examples_run(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_photos").mkdir()
    for img in sorted((data_root / "CamVid" / "test").glob("*"))[:2]:
        shutil.copy(img, tmp_path / "my_photos" / img.name)
    lines = cli_lines()
    assert len(lines) >= 8
    for line in lines:
        code = cli.main(shlex.split(line, comments=True)[1:])
        assert code == 0, (line, capsys.readouterr().err)
    assert (tmp_path / "runs/camvid-equss/eval/eval.json").is_file()
    assert (tmp_path / "runs/camvid-equss/crf/eval.json").is_file()
    assert (tmp_path / "runs/tune/tuned.yaml").is_file()
    assert len(list((tmp_path / "seg").glob("*_labels.png"))) == 2


def test_readme_python_example_runs():
    code = next(b for b in blocks("python") if "load_backbone" in b)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["backbone"].embed_dim == 384
    assert namespace["pq"].codebooks.shape == (32, 256, 32)


def _equations(text: str) -> set[int]:
    """The equation numbers named in ``text`` ("Eq. 2", "Eq. 1-4" -> {1, 2, 3, 4})."""
    return {n for a, b in re.findall(r"Eq\. (\d+)(?:-(\d+))?", text) for n in range(int(a), int(b or a) + 1)}


def test_method_table_names_real_code():
    """Every `equss/....py` `Symbol` in the README's "The method in code" table exists, and every
    equation of a row is named in the docstring of one of the objects the row points to."""
    import importlib
    import inspect

    text = README.read_text().split("## The method in code", 1)[1].split("\n\n", 2)[1]
    rows = [r for r in text.splitlines() if r.startswith("| ") and "`equss/" in r]
    assert len(rows) >= 7
    checked = 0
    for row in rows:
        paper, _, where = [c.strip() for c in row.strip("|").split("|")]
        docs = ""
        for part in where.split(";"):
            names = re.findall(r"`([^`]+)`", part)
            path, symbols = names[0], [n.rstrip("()") for n in names[1:]]
            assert path.startswith("equss/") and path.endswith(".py") and symbols, row
            module = importlib.import_module(path[:-3].replace("/", "."))
            for sym in (s for n in symbols for s in n.split(", ")):
                obj = module
                for attr in sym.split("."):
                    assert hasattr(obj, attr), f"{path}: no {sym} ({row})"
                    obj = getattr(obj, attr)
                docs += (inspect.getdoc(obj) or "") + "\n"  # the object's own docstring, not its module's
                checked += 1
        missing = _equations(paper) - _equations(docs)
        assert not missing, f"{paper}: Eq. {sorted(missing)} not named in the docstrings of {where}"
    assert checked >= 10


def test_equation_numbers_are_read_as_ranges():
    assert _equations("Eq. 1-4, then Eq. 6 and Eq. 8-9") == {1, 2, 3, 4, 6, 8, 9}
    assert _equations("no equation") == set()
