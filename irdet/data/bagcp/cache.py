"""On-disk cache of the BAG-CP target library built from a split, checked against its sources.

Building a :class:`~irdet.data.bagcp.library.TargetLibrary` reads every image, xml and target
mask of the split (about a minute for ``trainval_v2``), so training and ``synthesize-sequences``
build it once and keep it in ``$IRDET_CACHE`` (default ``~/.cache/irdet``)
``/target_library_<split>_<sha1(resolved root)[:10]>.npz``.

The file name knows only the root and the split's *name*. The library therefore records in
``meta["source_fingerprint"]`` a fingerprint of what it was built from: the split file's
content and the size and modification time of every listed image, xml and target mask (one
``stat`` per file: a few milliseconds for ``trainval_v2``), with the build parameters. On load
the fingerprint is computed again; when it differs (the split was edited or re-drawn, an image
or annotation replaced) the library is rebuilt and the cache file overwritten, so a changed
split never trains with targets cut from images that are no longer in it (e.g. test images
after a re-split). Source: irdet extension.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from irdet.data.datasets.densesirst import TARGET_MASK_FILES, read_split
from irdet.data.bagcp.extract import build_target_library
from irdet.data.bagcp.library import LIBRARY_FORMAT, TargetLibrary
from irdet.errors import DataError

__all__ = ["library_cache_path", "source_fingerprint", "cached_target_library", "LIBRARY_TARGET_MASK"]

#: Target masks the cached libraries are cut with (``build_target_library``'s default).
LIBRARY_TARGET_MASK = "binary"


def library_cache_path(root, split: str) -> Path:
    """Cache file of the target library built from ``root``/``split``.

    ``$IRDET_CACHE`` (default ``~/.cache/irdet``) / ``target_library_<split>_<hash of the
    resolved root>.npz``. Source: irdet extension.
    """
    base = Path(os.environ.get("IRDET_CACHE") or Path.home() / ".cache" / "irdet")
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return base / f"target_library_{split}_{digest}.npz"


def _stat(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return [str(path.name), "missing"]
    return [str(path.name), st.st_size, st.st_mtime_ns]


def source_fingerprint(root, split: str, target_mask: str | None = LIBRARY_TARGET_MASK) -> str:
    """Fingerprint of the files a library of ``root``/``split`` is built from.

    sha1 of: the library format and ``target_mask``, the bytes of ``Splits/<split>.txt``, and
    for each listed id the name, size and ``st_mtime_ns`` of its image, xml and target mask
    (``"missing"`` for an absent file). No file is opened except the split file.

    Raises:
        DataError: the split file is missing or empty.

    Source: irdet extension.
    """
    root = Path(root)
    ids = read_split(root, split)
    h = hashlib.sha1(json.dumps([LIBRARY_FORMAT, target_mask]).encode())
    h.update((root / "Splits" / f"{split}.txt").read_bytes())
    for image_id in ids:
        files = [root / "PNGImages" / f"{image_id}.png", root / "SIRST" / "BBox" / f"{image_id}.xml"]
        if target_mask:
            files.append(root / TARGET_MASK_FILES[target_mask].format(id=image_id))
        h.update(json.dumps([_stat(f) for f in files]).encode())
    return h.hexdigest()


def cached_target_library(root, split: str, *, progress: bool = False,
                          log: Callable[[str], None] = print) -> TargetLibrary:
    """The target library of ``root``/``split``: the cached one when it was built from the files
    on disk now, else built (``build_target_library(root, split)``) and cached.

    Args:
        root: DenseSIRST-layout root.
        split: split name (``Splits/<split>.txt``).
        progress: tqdm bar while building.
        log: receives one line when the library is built or rebuilt.

    Raises:
        DataError: a missing split, image, xml or mask (an unreadable cache file is rebuilt).

    Source: irdet extension.
    """
    cache = library_cache_path(root, split)
    fingerprint = source_fingerprint(root, split)
    if cache.is_file():
        try:
            library = TargetLibrary.load(cache)
        except DataError as exc:  # a cache file only: rebuild it
            library, why = None, f"is unreadable ({exc.problem})"
        else:
            why = "was built from other files than the split lists now (split edited, or images/annotations changed)"
        if library is not None and library.meta.get("source_fingerprint") == fingerprint:
            return library
        log(f"[irdet] the BAG-CP target library cached in {cache} {why}: rebuilding it from {root} / {split}")
    else:
        log(f"[irdet] building the BAG-CP target library from {root} / {split} (cached in {cache})")
    library = build_target_library(root, split, target_mask=LIBRARY_TARGET_MASK, progress=progress)
    library.meta["source_fingerprint"] = fingerprint
    library.save(cache)
    return library
