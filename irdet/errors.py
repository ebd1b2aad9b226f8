"""Exceptions raised by irdet for bad user input.

Every error that comes from a file names the file and the problem, so the command line can
print one line (no traceback) and exit non-zero.
"""

from __future__ import annotations


class IrdetError(Exception):
    """Base class of irdet's user-facing errors (bad data, bad config)."""


class DataError(IrdetError):
    """A data file is missing, unreadable or inconsistent.

    The message always starts with the offending path, e.g.
    ``"/data/SIRST/BBox/a.xml: object 3 has xmax < xmin (12 < 15)"``.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(IrdetError):
    """A configuration file or option is invalid (unknown key, wrong value)."""
