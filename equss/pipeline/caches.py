"""``equss features`` and ``equss knn``: build the feature cache and the kNN table of a
dataset split from the command line (training builds both on first use anyway)."""
from __future__ import annotations

from equss.data.features import get_or_build_features, human_size
from equss.data.knn import DEFAULT_K, get_or_build_knn, knn_path
from equss.device import resolve_device
from equss.pipeline.args import nonnegative_int, positive_int


def add_input_arguments(p) -> None:
    """Arguments shared by ``equss features`` and ``equss knn``."""
    p.add_argument("dataset", metavar="DATASET", help="dataset name (see `equss prepare --help`)")
    p.add_argument("--split", required=True, help="dataset split, e.g. train / val / test")
    p.add_argument("--backbone", required=True, help="backbone name, e.g. dinov2_vits14_offline or dino_vits8")
    p.add_argument("--weights", default=None, help="path to a weights file for the backbone")
    p.add_argument("--resolution", type=positive_int, default=None, help="image resolution (square)")
    p.add_argument("--data-root", default=None, help="folder holding the datasets (else EQUSS_DATA)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per backbone forward")
    p.add_argument("--num-workers", type=nonnegative_int, default=0, help="data loader workers")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: cuda if available)")
    p.add_argument("--five-crop", action="store_true", help="STEGO's five-crop training set")
    p.add_argument("--max-images", type=positive_int, default=None, help="only the first N images (smoke scale)")
    p.add_argument("--flip", action="store_true", help="the horizontally flipped images (flip-averaged evaluation)")


def load_inputs(args):
    """Load (backbone, dataset, device) from parsed CLI arguments."""
    from equss.backbones.vit import load_backbone
    from equss.data import get_dataset

    from equss.pipeline.inputs import FirstN, HFlip

    device = resolve_device(args.device)
    dataset = get_dataset(args.dataset, args.split, data_root=args.data_root,
                          resolution=args.resolution, five_crop=getattr(args, "five_crop", False))
    if getattr(args, "max_images", None):
        dataset = FirstN(dataset, args.max_images)
    if getattr(args, "flip", False):
        dataset = HFlip(dataset)
    backbone = load_backbone(args.backbone, weights=args.weights, device=device)
    return backbone, dataset, device


def _cmd_features(args) -> int:
    backbone, dataset, device = load_inputs(args)
    cache = get_or_build_features(backbone, dataset, batch_size=args.batch_size,
                                  num_workers=args.num_workers, device=device,
                                  rebuild=args.rebuild)
    m = cache.meta
    print(f"{cache.path}")
    print(f"{m['n']} images, features {m['C']}x{m['h']}x{m['w']} {m['dtype']}, "
          f"labels {'x'.join(map(str, m['label_shape']))} {m['label_dtype']}, "
          f"{human_size(cache.nbytes)}")
    return 0


def _register_features(subparsers) -> None:
    p = subparsers.add_parser(
        "features", help="cache frozen-backbone patch features of a dataset split",
        description="Run the frozen backbone over every image of a dataset split and store "
        "float16 patch features and labels in the feature cache (resumes if interrupted).")
    add_input_arguments(p)
    p.add_argument("--rebuild", action="store_true", help="delete and rebuild an existing cache")
    p.set_defaults(func=_cmd_features)


def _cmd_knn(args) -> int:
    backbone, dataset, device = load_inputs(args)
    cache = get_or_build_features(backbone, dataset, batch_size=args.batch_size,
                                  num_workers=args.num_workers, device=device)
    nns = get_or_build_knn(cache, k=args.k, chunk=args.chunk, rebuild=args.rebuild,
                           device=resolve_device(args.device))
    print(knn_path(cache, args.k))
    print(f"{nns.shape[0]} images x {nns.shape[1]} neighbours (rank 0 = the image itself)")
    return 0


def _register_knn(subparsers) -> None:
    p = subparsers.add_parser(
        "knn", help="precompute image-level nearest neighbours (STEGO precompute_knns)",
        description="Global-average-pool the cached backbone features, L2-normalise, and "
        "store each image's top-k cosine neighbours (rank 0 = itself). Builds the feature "
        "cache first if needed.")
    add_input_arguments(p)
    p.add_argument("--k", type=positive_int, default=DEFAULT_K, help="neighbours stored per image (STEGO: 30)")
    p.add_argument("--chunk", type=positive_int, default=1024, help="query rows per similarity block")
    p.add_argument("--rebuild", action="store_true", help="recompute the kNN table")
    p.set_defaults(func=_cmd_knn)


def register(subparsers) -> None:
    _register_features(subparsers)
    _register_knn(subparsers)
