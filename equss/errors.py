"""User-facing errors.

Every problem a user can cause (bad path, missing data, wrong name, stale cache) is
raised as :class:`EqussError` with a one-line message that names the problem and the
fix (several problems found together, e.g. by config validation: one line each).  The
CLI prints it without a traceback (unless ``--debug``) and exits with ``exit_code``
(2 by default; 1 for :class:`SystemProblem`).
"""


class EqussError(Exception):
    """A user-facing error with a one-line message naming the problem and the fix."""

    exit_code = 2


class SystemProblem(EqussError):
    """The operating system refused (disk full, folder not writable): one line, exit 1, like an
    ``OSError`` that reaches the CLI."""

    exit_code = 1


class Interrupted(EqussError):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint; exit 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)
