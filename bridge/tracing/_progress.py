"""The one progress display of lmbridge, shared by ``Evaluate`` and the optimizers.

On a terminal it is a tqdm bar on stderr. Anywhere else (a log file, CI, a pipe) it writes plain
lines, one each time another tenth of the work is done and one at the end, with no carriage
returns or terminal escapes, so logs stay readable.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

PLAIN_STEPS = 10
"""Off a terminal, a line is written each time another 1/PLAIN_STEPS of the total is done."""


class Progress:
    """``advance(n, status)`` after each unit of work; ``close()`` at the end (or use ``with``)."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 unit: str = "it") -> None:
        self.label, self.total, self.enabled = label, max(total, 0), enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.status = ""
        self._bar: Any = None
        self._next_line = 0
        self._written = 0
        self._closed = False
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, file=self.stream, unit=unit, leave=True,
                             dynamic_ncols=True, mininterval=0.1)

    def advance(self, n: int = 1, status: str = "") -> None:
        """Count ``n`` more units done; ``status`` is a short text such as ``score 50.0%``."""
        self.done += n
        self.status = status
        if not self.enabled or self._closed:
            return
        if self._bar is not None:
            if status:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(n)
            return
        if self.done >= self._next_line or self.done >= self.total:
            self._line()
            step = max(1, -(-self.total // PLAIN_STEPS))
            self._next_line = (self.done // step + 1) * step

    def _line(self) -> None:
        status = f" {self.status}" if self.status else ""
        self._written = self.done
        self.stream.write(f"{self.label}: {self.done}/{self.total}{status}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        elif self.done != self._written:
            self._line()  # where the run stopped

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
