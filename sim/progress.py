"""Progress of a run over its trials, on standard error: trials done, rate and ETA.

On a terminal a rich progress bar; otherwise (a pipe, a log file) one plain line at
the start and one each time another 10 % of the trials is through, so a piped run
is never silent for long. The rate is trials done over the wall time so far (the
whole run's average, not a sliding window: a chunk reports every few seconds or
every few minutes, and per-trial costs do not drift during a run), and the ETA is
the trials left at that rate, counted down between reports.

The engine reports fractional trials as a chunk's work gets done
(:func:`sim.engine.run_scenario`, ``progress``), so the count moves inside a chunk.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Callable

from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.text import Text

LINE_STEP = 0.10  # a piped run prints a line each time this fraction of the trials is through


def duration_text(seconds: float) -> str:
    """A wall time for people: ``"42 s"``, ``"3 min 07 s"``, ``"1 h 05 min"``; ``"--"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _trials(n: float) -> str:
    return f"{n:g} trial" if n == 1 else f"{n:g} trials"


def rate_text(done: float, elapsed: float) -> str:
    """Trials per second, or seconds per trial when slower than one a second; ``"--"`` before any is done."""
    if done <= 0 or elapsed <= 0:
        return "--"
    rate = done / elapsed
    return f"{rate:.2f} trials/s" if rate >= 1.0 else f"{1.0 / rate:.1f} s/trial"


class TrialProgress:
    """Progress over trials on a stream: a rich bar on a terminal, a line every 10 % otherwise.

    Use as a context manager; the object is the ``progress(done, total)`` callback of
    :func:`sim.engine.run_scenario` and :func:`sim.engine.replay`.

    Parameters
    ----------
    label : str
        What is being computed (the scenario's name, the policies), shown before the bar or the lines.
    total : float
        Trials to run (the callback may change it).
    stream : file, optional
        Default standard error.
    terminal : bool, optional
        Bar (True) or lines (False); default: whether ``stream`` is a terminal.
    clock : callable, optional
        Seconds, monotonic (for tests).
    width : int, optional
        Terminal width in characters; default: the terminal's.
    """

    def __init__(self, label: str, total: float, stream=None, terminal: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None):
        self.label = label
        self.total = float(total)
        self.stream = sys.stderr if stream is None else stream
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.clock = clock
        self.width = width
        self.done = 0.0
        self.start = None
        self.last_report = None
        self.next_line = LINE_STEP
        self.bar = None
        self._task = None
        self._lock = threading.Lock()  # the engine may report from a worker thread (the live view)

    # ------------------------------------------------------------------ figures
    def elapsed(self) -> float:
        """Wall time since the run started, s."""
        return 0.0 if self.start is None else self.clock() - self.start

    def eta(self) -> float:
        """Seconds left at the rate so far, counted down since the last report; inf before any trial is done."""
        if self.done <= 0 or self.last_report is None:
            return math.inf
        at_report = self.last_report - self.start
        if at_report <= 0:
            return math.inf
        left = (self.total - self.done) * at_report / self.done
        return max(0.0, left - (self.clock() - self.last_report))

    def line(self) -> str:
        """The plain progress line: percent, trials, elapsed, rate and ETA."""
        pct = 100.0 * self.done / self.total if self.total > 0 else 100.0
        at_report = (self.last_report - self.start) if self.last_report is not None else self.elapsed()
        return (f"{self.label}: {pct:3.0f} % ({self.done:.1f} of {_trials(self.total)}) in "
                f"{duration_text(self.elapsed())}, {rate_text(self.done, at_report)}, "
                f"ETA {duration_text(self.eta())}")

    # ------------------------------------------------------------------ callback
    def __call__(self, done: float, total: float) -> None:
        with self._lock:
            self.total = float(total)
            self.done = min(float(done), self.total)
            self.last_report = self.clock()
            if self.bar is not None:
                self.bar.update(self._task, completed=self.done, total=self.total)
                return
            frac = self.done / self.total if self.total > 0 else 1.0
            if frac + 1e-9 >= self.next_line:
                print(self.line(), file=self.stream, flush=True)
                while self.next_line <= frac + 1e-9:
                    self.next_line += LINE_STEP

    def __enter__(self) -> "TrialProgress":
        self.start = self.clock()
        if self.terminal:
            console = Console(file=self.stream, force_terminal=True, width=self.width)
            self.bar = Progress(_Line(self), console=console, transient=True, refresh_per_second=4)
            self.bar.start()
            self._task = self.bar.add_task(self.label, total=self.total)
        else:
            print(f"{self.label}: started, {_trials(self.total)}; a line each {LINE_STEP:.0%} of them",
                  file=self.stream, flush=True)
        return self

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.stop()
        return False


class _Line(ProgressColumn):
    """The whole bar line, fitted to the terminal: label (cut with an ellipsis), bar, then trials done of
    total, rate and ETA, which are never cut (rich's own column layout cut the figures first on 80 columns)."""

    BAR = 20  # characters of bar, at most

    def __init__(self, owner: TrialProgress):
        super().__init__()
        self.owner = owner

    def figures(self) -> str:
        o = self.owner
        at_report = (o.last_report - o.start) if o.last_report is not None else o.elapsed()
        return f"{o.done:.1f}/{_trials(o.total)}  {rate_text(o.done, at_report)}  ETA {duration_text(o.eta())}"

    def render(self, task) -> Text:
        o = self.owner
        fig = self.figures()
        room = o.bar.console.width - 1 - len(fig) - 2  # one column spare: no wrap at the right edge
        bar = max(0, min(self.BAR, room - 11, max(6, room - len(o.label) - 1)))  # the label before the bar
        label_w = max(0, room - bar - 1)
        label = o.label if len(o.label) <= label_w else o.label[:max(0, label_w - 1)] + "\u2026"
        filled = int(round(bar * (o.done / o.total if o.total > 0 else 1.0)))
        return Text.assemble(label.ljust(label_w), " ", ("\u2501" * filled, "green"),
                             ("\u2501" * (bar - filled), "grey37"), "  ", fig)
