"""Progress bars that suit where the user is (every loop over a dataset uses :func:`bar`).

* A terminal (the ``equss`` CLI): tqdm's text bar on stderr, as before.
* A notebook in JupyterLab: tqdm's widget bar (``tqdm.auto`` with ipywidgets), one output
  per bar, updated in place.
* A notebook executed by ``make reproduce-*`` (:mod:`equss.paper.notebooks` sets
  ``EQUSS_PROGRESS_LOG``): nothing in the notebook; one concise line (what, n/total,
  percent, elapsed, ETA, rate) appended to that file when a bar starts, at most every
  ``EQUSS_PROGRESS_INTERVAL`` seconds (default 10) and when it ends.  The runner prints
  those lines on the terminal, so an executed notebook keeps no progress output.
"""
from __future__ import annotations

import io
import os
import time

from tqdm import tqdm as _std_tqdm

LOG_ENV = "EQUSS_PROGRESS_LOG"
INTERVAL_ENV = "EQUSS_PROGRESS_INTERVAL"
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed, {rate_fmt}{postfix}"


def log_path() -> str | None:
    """The progress log this process writes to, if a runner asked for one."""
    return os.environ.get(LOG_ENV) or None


def _append(line: str) -> None:
    path = log_path()
    if path and line.strip():
        with open(path, "a") as fh:
            fh.write(line.rstrip() + "\n")


class LogBar(_std_tqdm):
    """A tqdm whose display is one line appended to the progress log, rate-limited."""

    def __init__(self, *args, **kwargs):
        for k in ("dynamic_ncols", "ncols", "file", "position"):
            kwargs.pop(k, None)
        self._interval = float(os.environ.get(INTERVAL_ENV, "10"))
        self._last_emit = -float("inf")
        self._closing = False
        self._last_line = None
        kwargs.setdefault("mininterval", min(self._interval, 1.0))
        super().__init__(*args, file=io.StringIO(), ascii=True, bar_format=LINE_FORMAT, **kwargs)

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing a bar that does not stay
            return True
        now = time.time()
        if not self._closing and now - self._last_emit < self._interval:
            return True
        self._last_emit = now
        line = msg if msg is not None else self.line()
        if line != self._last_line:  # e.g. the closing line repeats the last update
            self._last_line = line
            _append(line)
        return True

    def line(self) -> str:
        fmt = LINE_FORMAT if self.total else LINE_FORMAT_NO_TOTAL
        return self.format_meter(**{**self.format_dict, "bar_format": fmt})

    def close(self):
        if not self.disable and not self._closing:
            self._closing = True
            if self.leave is False:  # still say that it finished
                self.display(self.line())
        super().close()

    @classmethod
    def write(cls, s, file=None, end="\n", nolock=False):
        _append(str(s))


def bar(iterable=None, **kwargs):
    """A progress bar (the arguments of ``tqdm``) for the current surroundings; see the module doc."""
    if log_path():
        return LogBar(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def note(message: str) -> None:
    """A one-line status message (e.g. which run starts): to the progress log when a runner
    reads one, else nowhere (the bars say enough in a terminal or in JupyterLab)."""
    _append(message)
