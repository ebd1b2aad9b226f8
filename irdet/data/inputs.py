"""Inference inputs of the Python API and ``irdet detect``: paths and in-memory images, mixed.

:class:`InputImages` is an :class:`~irdet.data.densesirst.ImageFolder` (same image ids, same
skipped markers for unreadable files, same batching) that also takes numpy arrays, torch
tensors and PIL images, and keeps the order of its inputs (a folder expands, sorted, where it
stands in the list). :func:`image_from` converts one in-memory image the way
:func:`irdet.data.io.read_image` converts a file. Source: irdet extension.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from irdet.data.densesirst import ImageFolder, to_sample
from irdet.data.io import image_array, read_image
from irdet.errors import DataError

__all__ = ["InputImages", "image_from", "is_path", "memory_id"]


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
            try:
                image = read_image(source)
            except DataError as exc:
                return {"image_id": image_id, "path": str(source), "skipped": exc.problem}
            path = str(source)
        else:
            name = f"<input {image_id.rsplit('_', 1)[-1]}>"
            try:
                image = image_from(source, name)
            except DataError as exc:
                return {"image_id": image_id, "path": name, "skipped": exc.problem}
            path = None
        sample = to_sample({"image_id": image_id, "image": image})
        sample["path"] = path
        return self.transforms(sample) if self.transforms is not None else sample
