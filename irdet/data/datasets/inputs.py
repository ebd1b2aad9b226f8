"""Inference inputs of ``irdet detect`` and the Python API: image files, folders and in-memory images.

:class:`ImageFolder` reads files and folders (recursive) without annotations, giving every
file a unique image id (:func:`unique_image_ids`) and a *skipped marker* instead of a sample
for an unreadable file, so a bad file does not stop a batch. :class:`InputImages` is an
:class:`ImageFolder` (same image ids, same skipped markers, same batching) that also takes
numpy arrays, torch tensors and PIL images, and keeps the order of its inputs (a folder
expands, sorted, where it stands in the list). :func:`image_from` converts one in-memory image
the way :func:`irdet.data.io.read_image` converts a file. Source: irdet extension.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from irdet.data.collate import collate
from irdet.data.datasets.base import to_sample
from irdet.data.io import image_array, read_image
from irdet.errors import DataError

__all__ = ["ImageFolder", "InputImages", "unique_image_ids", "image_from", "is_path", "memory_id", "IMAGE_SUFFIXES"]

#: suffixes of the files a folder input contributes (others are listed as skipped)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_path(obj) -> bool:
    """True for a ``str`` or ``os.PathLike`` (a file or folder to read)."""
    return isinstance(obj, (str, os.PathLike))


def memory_id(index: int) -> str:
    """Image id of the in-memory input at ``index`` of the inputs list: ``"input_<index>"``."""
    return f"input_{index}"


def image_from(obj, name: str = "<image>") -> np.ndarray:
    """An in-memory image as :func:`~irdet.data.io.read_image` returns a file: (H, W, 3) float32 in [0, 255].

    Args:
        obj: a PIL image (any mode, as a file of that mode); a numpy array or torch tensor
            (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (RGB(A), alpha dropped; a tensor may
            also be (1 | 3 | 4, H, W)): ``uint8`` as pixel values, other integer types (H, W)
            min-max stretched to [0, 255] like a 16-bit PNG, float values taken as [0, 255]
            intensities (not rescaled).
        name: what errors call it (e.g. ``"<input 2>"``).

    Raises:
        DataError: ``name``: not an image type, bad shape, empty, non-finite values.
    """
    from PIL import Image

    if isinstance(obj, Image.Image):
        obj.load()
        if obj.width == 0 or obj.height == 0:
            raise DataError(name, "image has zero size")
        return image_array(obj)
    if type(obj).__module__.startswith("torch"):
        obj = obj.detach().cpu().numpy()
        if obj.ndim == 3 and obj.shape[0] in (1, 3, 4) and obj.shape[-1] not in (1, 3, 4):
            obj = obj.transpose(1, 2, 0)
    if not isinstance(obj, np.ndarray):
        raise DataError(name, f"not an image: {type(obj).__name__} (expected a path, a numpy array, a torch tensor "
                              f"or a PIL image)")
    a = obj[..., 0] if obj.ndim == 3 and obj.shape[2] == 1 else obj
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise DataError(name, f"array of shape {tuple(obj.shape)} is not an image (expected (H, W), (H, W, 1), "
                              f"(H, W, 3) or (H, W, 4))")
    if a.size == 0:
        raise DataError(name, "image has zero size")
    if a.dtype == np.uint8:
        return image_array(Image.fromarray(np.ascontiguousarray(a)))
    if np.issubdtype(a.dtype, np.integer):
        if a.ndim != 2:
            raise DataError(name, f"{a.dtype} image of shape {tuple(a.shape)}: only uint8 images may have channels "
                                  f"(give other integer types as (H, W))")
        return image_array(Image.fromarray(a.astype(np.int32)))  # mode "I": min-max, as a 16-bit PNG
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(name, f"array of dtype {a.dtype} is not an image")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise DataError(name, "image has non-finite values")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


class ImageFolder(Dataset):
    """Images without annotations, for ``irdet detect``: files and/or folders (recursive).

    Every file gets its own ``image_id`` (irdet extension): its path relative to the common
    parent of the inputs (a folder input counts as itself, a file input as its folder),
    without suffix, ``/``-separated. One folder → ids relative to it (``x``, ``sub/y``);
    ``dirA/frame.png`` and ``dirB/frame.png`` → ``dirA/frame`` and ``dirB/frame``. Files whose
    ids would still coincide (``shot.png`` beside ``shot.jpg``) keep their suffix
    (``shot.png``, ``shot.jpg``); a file named twice (itself and inside a folder) is one item.
    Two inputs are never merged into one id.

    Bad files do not stop a batch (irdet extension). ``skipped`` lists ``(path, reason)`` for
    files in a folder without an image suffix (:data:`IMAGE_SUFFIXES`) and for folders without
    images. An item whose file cannot be read as an image (corrupt, truncated, text saved as
    ``.png``, an explicit non-image file) is a *skipped marker* ``{"image_id", "path",
    "skipped": reason}`` instead of a sample (transforms are not applied); :meth:`collate`
    batches the others and passes markers on in ``batch["skipped"]``, in the DataLoader's
    workers as in the main process.

    Items are dicts with ``image`` (3, H, W) float32 in [0, 255], ``image_id``, ``path`` (str)
    and ``orig_size`` (H, W); ``items`` is the list of ``(image_id, path)``.

    Raises:
        DataError: a path does not exist, or the inputs hold no image file at all (a single
            folder without images: ``"folder has no images"``).
    """

    def __init__(self, inputs: str | os.PathLike | Sequence[str | os.PathLike], transforms=None):
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        files: list[tuple[Path, Path]] = []  # (file, the folder its id is relative to)
        self.skipped: list[tuple[Path, str]] = []
        for inp in inputs:
            p = Path(inp)
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file())
                images = [f for f in found if f.suffix.lower() in IMAGE_SUFFIXES]
                self.skipped += [(f, f"not an image file (suffix {f.suffix or 'none'!r}; images: {', '.join(IMAGE_SUFFIXES)})")
                                 for f in found if f.suffix.lower() not in IMAGE_SUFFIXES]
                if not images:
                    self.skipped.append((p, f"folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
                files += [(f, p) for f in images]
            elif p.is_file():
                files.append((p, p.parent))
            else:
                raise DataError(p, "file or folder not found")
        if not inputs:
            raise DataError("<inputs>", "no image files or folders given")
        if not files:  # every input is a folder without images: nothing to detect
            raise DataError(*next((q, r) for q, r in self.skipped if q.is_dir()))
        self.items: list[tuple[str, Path]] = unique_image_ids(files)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        image_id, path = self.items[index]
        return self._item(image_id, read_image, (path,), str(path))

    def _item(self, image_id: str, read, args: tuple, path: str | None) -> dict:
        """The sample of ``read(*args)`` (transforms applied), or the skipped marker
        ``{"image_id", "path", "skipped": reason}`` when it raises a DataError."""
        try:
            image = read(*args)
        except DataError as exc:  # a skipped marker, batched by ImageFolder.collate
            return {"image_id": image_id, "path": path if path is not None else str(args[-1]), "skipped": exc.problem}
        sample = to_sample({"image_id": image_id, "image": image})
        sample["path"] = path
        return self.transforms(sample) if self.transforms is not None else sample

    @staticmethod
    def collate(samples: list[dict]) -> dict:
        """Batch items: :func:`irdet.data.collate.collate` of the readable ones, plus
        ``skipped``: the markers ``{"image_id", "path", "skipped": reason}`` of the others (a
        batch may hold only markers: then ``image_id`` is empty and there is no ``images``).
        Source: irdet extension."""
        good = [s for s in samples if "skipped" not in s]
        batch = collate(good) if good else {"image_id": [], "path": []}
        batch["skipped"] = [s for s in samples if "skipped" in s]
        return batch


def unique_image_ids(files: Sequence[tuple[Path, Path]]) -> list[tuple[str, Path]]:
    """``(image_id, file)`` for ``(file, folder)`` pairs, every id distinct (see :class:`ImageFolder`).

    Ids are ``/``-separated paths relative to the common parent of all ``folder`` s, without
    suffix; ids that coincide keep their suffix; ids still equal after that (``a.png`` vs the
    stem of ``a.png.jpg``) get ``~2``, ``~3``, ... The same file twice (same absolute path)
    is kept once. Order follows ``files``. Source: irdet extension.
    """
    seen_files: set[str] = set()
    kept: list[tuple[Path, str]] = []
    for f, folder in files:
        key = os.path.abspath(f)
        if key not in seen_files:
            seen_files.add(key)
            kept.append((f, os.path.abspath(folder)))
    base = os.path.commonpath([folder for _, folder in kept])
    rel = [Path(os.path.relpath(os.path.abspath(f), base)) for f, _ in kept]
    stems = [r.with_suffix("").as_posix() for r in rel]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    ids = [r.as_posix() if counts[s] > 1 else s for r, s in zip(rel, stems)]
    taken: set[str] = set()
    out = []
    for image_id, (f, _) in zip(ids, kept):
        unique, k = image_id, 1
        while unique in taken:
            k += 1
            unique = f"{image_id}~{k}"
        taken.add(unique)
        out.append((unique, f))
    return out


class InputImages(ImageFolder):
    """Images to detect on: paths (files and folders, :class:`ImageFolder`'s rules and ids) and
    in-memory images (:func:`image_from`; id :func:`memory_id`), in input order.

    Items are those of :class:`ImageFolder` (``image`` (3, H, W) float32 in [0, 255],
    ``image_id``, ``path`` (None for in-memory images), ``orig_size``); an unreadable file or
    an in-memory input that is not an image is a skipped marker. ``sources`` maps each image
    id to its input (the file path, or the object given).

    Raises:
        DataError: a path does not exist; no input at all; only folders without images.
    """

    def __init__(self, inputs, transforms=None):
        if is_path(inputs) or not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        paths = [x for x in inputs if is_path(x)]
        memory = [(i, x) for i, x in enumerate(inputs) if not is_path(x)]
        if not inputs:
            raise DataError("<inputs>", "no image files or folders given")
        self.items, self.skipped, self.transforms = [], [], transforms
        if paths:
            try:
                super().__init__(paths, transforms)
            except DataError as exc:  # only folders without images: skipped, beside in-memory images
                if not memory or not all(Path(p).is_dir() for p in paths):
                    raise
                self.skipped = [(Path(p), exc.problem) for p in paths]
        by_file = {os.path.abspath(f): (image_id, f) for image_id, f in self.items}
        taken: set[str] = set()
        entries: list[tuple[str, object]] = []
        for index, inp in enumerate(inputs):
            if not is_path(inp):
                entries.append((memory_id(index), inp))
                continue
            key = os.path.abspath(inp)
            if os.path.isdir(inp):
                mine = [k for k in by_file if k.startswith(key.rstrip(os.sep) + os.sep) and k not in taken]
            else:
                mine = [key] if key in by_file and key not in taken else []
            for k in mine:
                taken.add(k)
                entries.append(by_file[k])
        self.entries = entries
        self.sources = dict(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        image_id, source = self.entries[index]
        if is_path(source):  # as ImageFolder
            return self._item(image_id, read_image, (source,), str(source))
        return self._item(image_id, image_from, (source, f"<input {image_id.rsplit('_', 1)[-1]}>"), None)
