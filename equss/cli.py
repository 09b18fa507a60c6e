"""The ``equss`` command.

Each subcommand is registered by its module in ``equss/pipeline/`` (:data:`COMMANDS`): the module
defines ``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the
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

from equss.cpus import cap_threads
from equss.errors import EqussError
from equss.safeio import TRUST_FLAG, trust_pickle

TRUST_HELP = ("load checkpoint / weights files that need full unpickling (this runs code stored in the file: "
              "only for files from a source you trust); without it such files are refused")

# subcommand -> (the module in equss/pipeline/ that registers it, its one-line help for `equss --help`).
# Only the chosen subcommand's module is imported, so `equss --help` answers without importing torch
# (tests/test_cli_surface.py checks that the help lines match the modules' own).
COMMANDS = {
    "prepare": ("equss.pipeline.prepare", "check / index a dataset (and download CamVid)"),
    "weights": ("equss.pipeline.weights", "convert (and with --download fetch) the offline DINOv2 ViT-S/14 weights"),
    "features": ("equss.pipeline.caches", "cache frozen-backbone patch features of a dataset split"),
    "knn": ("equss.pipeline.caches", "precompute image-level nearest neighbours (STEGO precompute_knns)"),
    "baseline": ("equss.pipeline.baseline", "raw-backbone baseline: k-means and linear probe on frozen features"),
    "train": ("equss.pipeline.train", "train a STEGO/EQUSS head (+PQ) on frozen backbone features"),
    "tune": ("equss.pipeline.tune", "calibrate the correlation-loss shifts to a backbone/dataset (validation only)"),
    "eval": ("equss.pipeline.evaluate", "evaluate a checkpoint (unsupervised + linear Acc/mIoU, optional CRF)"),
    "posthoc": ("equss.pipeline.posthoc", "converged post-hoc probes (k-means + linear) on a checkpoint's frozen head output"),
    "segment": ("equss.pipeline.segment", "segment your own images with a shipped model or a trained checkpoint"),
    "reproduce": ("equss.pipeline.reproduce", "execute the paper's notebooks (tables, figures, claims) at a scale"),
}


def _chosen(argv: list[str] | None) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any."""
    for arg in argv or []:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None, full: bool = True) -> argparse.ArgumentParser:
    """The ``equss`` parser.  ``full``: every subcommand's module registers its parser; else only
    the one ``argv`` names (the others are listed by name and help line)."""
    parser = argparse.ArgumentParser(
        prog="equss",
        description="EQUSS / STEGO unsupervised semantic segmentation: data preparation, "
        "feature caching, training, evaluation, inference and the paper's notebooks.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv)
    modules = dict.fromkeys(m for n, (m, _) in COMMANDS.items() if full or n == chosen)
    for module in modules:  # the modules first: one may register several subcommands (features, knn)
        importlib.import_module(module).register(sub)
    for name, (_, help_line) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_line, add_help=False)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv, full=False)
    args = parser.parse_args(argv)
    args.argv = argv  # for "resume with: equss ..." hints
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        _print_error("give a subcommand (listed above), e.g. `equss train --help`")
        return 2
    trust_pickle(bool(getattr(args, "trust_pickle", False)))  # for this command only (reset below)
    cap_threads()  # no more threads than a cgroup CPU quota allows, unless OMP_NUM_THREADS & co. chose
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
