"""User-facing errors.

Every problem a user can cause (bad path, missing data, wrong name, stale cache) is
raised as :class:`EqussError` with a one-line message that names the problem and the
fix.  The CLI prints it without a traceback (unless ``--debug``) and exits non-zero.
"""


class EqussError(Exception):
    """A user-facing error with a one-line message naming the problem and the fix."""
