"""What image synthesis (``irdet synthesize``) and sequence synthesis (``irdet synthesize-sequences``) share:
the checks of the source root and the output folder, the progress bar, and list files.

Both read a DenseSIRST-layout root (``PNGImages/`` …) and write a new dataset into an output
folder that must be empty (unless overwriting is allowed) and may neither contain nor lie inside
the source, so that the source is never written to. Every file is written atomically
(:mod:`irdet.data.io`). Source: irdet extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from irdet.data.io import atomic_write_bytes
from irdet.errors import DataError

__all__ = ["is_inside", "check_source_root", "check_output_folder", "progress_range", "write_lines"]


def is_inside(child: Path, parent: Path) -> bool:
    """True when ``child`` is ``parent`` or lies under it (both resolved, symlinks followed)."""
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_source_root(src: Path) -> None:
    """Raises:
        DataError(src, ...): ``src`` has no ``PNGImages/`` folder (not a DenseSIRST-layout root).
    """
    if not (src / "PNGImages").is_dir():
        raise DataError(src, "not a DenseSIRST-layout root: no PNGImages/ folder")


def check_output_folder(out: Path, src: Path, overwrite: bool, source_name: str = "the source") -> None:
    """Refuse an output folder that would overwrite the source or other files.

    Args:
        out: the output folder (created later by the writer).
        src: the source root.
        overwrite: allow a non-empty ``out`` (its files are replaced).
        source_name: how the messages call the source (``"the source"``, ``"the backgrounds root"``).

    Raises:
        DataError(out, ...): ``out`` contains or lies inside ``src``, exists and is not a
            folder, or is a non-empty folder while ``overwrite`` is False.
    """
    if is_inside(out, src) or is_inside(src, out):
        raise DataError(out, f"output folder must not contain or lie inside {source_name} {src}")
    if out.exists() and not out.is_dir():
        raise DataError(out, "output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(out, "output folder is not empty (choose another or allow overwrite)")


def progress_range(n: int, desc: str, unit: str, progress: bool) -> Iterable[int]:
    """``range(n)``, wrapped in a tqdm progress bar when ``progress``."""
    if not progress:
        return range(n)
    from tqdm import tqdm

    return tqdm(range(n), desc=desc, unit=unit)


def write_lines(path: Path, lines: Iterable) -> None:
    """Write one ``str(item)`` per line (``\\n`` after each, also the last), atomically."""
    atomic_write_bytes(path, "".join(f"{x}\n" for x in lines).encode())
