"""Command-line arguments shared by several subcommands: the run configuration (preset,
scale, YAML file, ``--set`` overrides) and a dataset split with its backbone."""
from __future__ import annotations

import argparse

from equss.config import Config, load_config


def int_at_least(low: int):
    """argparse type: an integer >= ``low`` (argparse prints one usage line otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def add_config_args(p):
    p.add_argument("--preset", help="named preset (see `equss train --list-presets`)")
    p.add_argument("--scale", default="proxy", choices=["smoke", "proxy", "paper"],
                   help="smoke: seconds (CI); proxy: real offline data on CPU; paper: the real benchmarks (default: proxy)")
    p.add_argument("--config", help="YAML file with {model,loss,data,train} sections, applied after the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set train.steps=100 (repeatable)")
    p.add_argument("--data-root", help="folder with the datasets (default: $EQUSS_DATA, else ./data)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: from the config, auto)")


def config_from_args(args) -> Config:
    overrides = list(args.overrides)
    if getattr(args, "data_root", None) is not None:
        overrides.append(f"data.data_root={args.data_root}")
    if getattr(args, "device", None) is not None:
        overrides.append(f"train.device={args.device}")
    if getattr(args, "steps", None) is not None:  # --steps 0 is checked (and refused), not ignored
        overrides.append(f"train.steps={args.steps}")
    if getattr(args, "input_path", None) is not None:
        overrides.append(f"train.input_path={args.input_path}")
    return load_config(args.preset, args.scale, args.config, overrides)
