"""The `equss` command surface: every subcommand is registered by its module in equss/pipeline/, the help
lines `equss --help` shows without importing those modules are the modules' own, and `equss --help`
imports no torch."""
from __future__ import annotations

import subprocess
import sys

from equss import cli


def test_listed_help_lines_are_the_modules_own():
    full = cli.build_parser(full=True)
    sub = next(a for a in full._actions if a.__class__.__name__ == "_SubParsersAction")
    own = {a.dest: a.help for a in sub._choices_actions}
    assert set(own) == set(cli.COMMANDS)
    for name, (module, help_line) in cli.COMMANDS.items():
        assert module.startswith("equss.pipeline."), name
        assert own[name] == help_line, name


def test_help_imports_no_torch():
    code = ("import sys\nfrom equss import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
