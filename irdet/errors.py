"""Exceptions raised by irdet for bad user input.

Every error that comes from a file names the file and the problem, so the command line can
print one line (no traceback) and exit non-zero.

The classes survive a trip through a DataLoader worker: torch re-raises a worker's exception
in the main process as ``exc_type(text)`` where ``text`` is ``"Caught <Name> in DataLoader
worker process k.\nOriginal Traceback ..."`` ending with ``"<module>.<Name>: <message>"``
(``torch/_utils.py``, ``ExceptionWrapper.reraise``). Built from such a text, an irdet error
keeps only ``<message>``, so the same one line comes out whatever ``data.num_workers`` is.
They also pickle (``__reduce__``). Source: irdet extension.
"""

from __future__ import annotations


def _worker_message(cls: type, text: str) -> str | None:
    """The original message inside torch's re-raise text for ``cls``, or None if ``text`` is not one."""
    if not (text.startswith(f"Caught {cls.__name__} ") and "\nOriginal Traceback" in text):
        return None
    marker = f"\n{cls.__module__}.{cls.__qualname__}: "
    at = text.rfind(marker)
    return text[at + len(marker):].rstrip("\n") if at >= 0 else None


class IrdetError(Exception):
    """Base class of irdet's user-facing errors (bad data, bad config).

    ``IrdetError(message)``; a message that is torch's DataLoader re-raise text is reduced to
    the original one-line message (see the module docstring).
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_worker_message(type(self), args[0]) or args[0],)
        super().__init__(*args)


class DataError(IrdetError):
    """A data file is missing, unreadable or inconsistent.

    The message always starts with the offending path, e.g.
    ``"/data/SIRST/BBox/a.xml: object 3 has xmax < xmin (12 < 15)"``.
    """

    def __init__(self, path, problem: str | None = None):
        if problem is None:  # one preformatted "path: problem" string (torch's worker re-raise, unpickling)
            text = _worker_message(type(self), str(path)) or str(path)
            path, sep, problem = text.partition(": ")
            problem = problem if sep else ""
        self.path = str(path)
        self.problem = problem
        super(IrdetError, self).__init__(f"{self.path}: {problem}" if problem else self.path)

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class DataFilesError(DataError):
    """Several data files are broken, reported together (irdet extension).

    ``DataFilesError(root, problems)``: ``problems`` holds one :class:`DataError` per bad file
    (duplicates dropped, order kept). The message's first line names the dataset root and
    gives the count; one line per file follows::

        /data/SIRSTdevkit: 2 broken data files (fix them or drop their ids from the split):
          /data/SIRSTdevkit/PNGImages/a.png: cannot read image (OSError: Truncated File Read)
          /data/SIRSTdevkit/SIRST/BBox/b.xml: malformed xml (...)
    """

    def __init__(self, root, problems=None):
        if problems is None or isinstance(problems, str):  # preformatted text (worker re-raise)
            super().__init__(root, problems)
            self.problems = []
            return
        self.problems = list({str(p): p for p in problems}.values())
        n = len(self.problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(root, f"{n} broken data file{'' if n == 1 else 's'} (fix them or drop their ids from the split):"
                               f"{lines}")

    def __reduce__(self):
        return type(self), (self.path, self.problems)


class ConfigError(IrdetError):
    """A configuration file or option is invalid (unknown key, wrong value)."""
