"""Project exceptions for bad input.

Every user error names where it is (file and key path), the bad value and what
is allowed, so that the CLI can print it as one line and exit with status 2.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


class GsomiaError(Exception):
    """Base class of every error the CLI reports as a user error (exit status 2)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    Attributes
    ----------
    key_path : str
        Where, e.g. ``sensor[3].lat_deg`` (empty for the file as a whole).
    value : object
        The bad value as read (``None`` when missing).
    allowed : str
        What is allowed, in words.
    file : str
        File name, or ``""`` for command-line or programmatic input.
    """

    key_path: str
    value: object
    allowed: str
    file: str = ""

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.key_path) if p)
        shown = "missing" if self.value is _MISSING else f"got {shown_value(self.value)}"
        return f"{where}: {shown}; {self.allowed}" if where else f"{shown}; {self.allowed}"


def shown_value(value, limit: int = 80) -> str:
    """A bad value as the user wrote it in TOML, for an error line.

    ``true``/``false`` for booleans, ISO 8601 for date-times, ``a table with keys ...``
    for a table, quoted strings, numbers as read; cut at ``limit`` characters.
    """
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif hasattr(value, "isoformat"):  # datetime, date, time (tomllib's types)
        text = value.isoformat()
    elif isinstance(value, dict):
        keys = ", ".join(map(str, value))
        text = f"a table with keys {keys}" if value else "an empty table"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(value, names) -> str:
    """``"did you mean 'x'? "`` for the name closest to ``value``, or ``""``.

    Names are case-sensitive (``filter = "EKF"`` is refused); a name that differs only in
    case is suggested first, then the closest by :func:`difflib.get_close_matches` (cut-off
    0.6) compared in lower case, so ``trilat`` gets ``trilateral`` and ``EKF`` gets ``ekf``.
    """
    names = [str(n) for n in names]
    text = str(value)
    same = [n for n in names if n.lower() == text.lower()]
    if same:
        return f"did you mean '{same[0]}'? names are case-sensitive; "
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(text.lower(), list(lower), n=1, cutoff=0.6)
    return f"did you mean '{lower[close[0]]}'? " if close else ""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING = _MISSING  # sentinel value for a required key that is absent


class InputError(GsomiaError):
    """One or more :class:`Problem` s found in an input.

    Parameters
    ----------
    problems : Problem or list of Problem

    Attributes
    ----------
    problems : list of Problem
        Every problem found, in file order; ``str(err)`` joins them with newlines.
    """

    def __init__(self, problems):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, key_path: str, value, allowed: str, file: str = "") -> "InputError":
        """Build an error with one problem."""
        return cls([Problem(key_path, value, allowed, file)])
