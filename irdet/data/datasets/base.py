"""What every single-frame dataset layout provides (:class:`SingleFrameDataset`), and the sample dicts it yields.

A layout (``data.layout``; the registry is :data:`irdet.data.datasets.DATASETS`) is a
``torch.utils.data.Dataset`` class that also answers, without a dataset object at hand, the
questions the engine asks before it opens one:

* :meth:`SingleFrameDataset.resolve_root`: where the data is (a ``--data`` argument, else the
  layout's defaults), checked to be of this layout;
* :meth:`SingleFrameDataset.split_ids`: the image ids of a split (the split-selection guard
  compares them, :mod:`irdet.engine.selection`);
* :attr:`SingleFrameDataset.has_sky_masks`: whether the layout has per-pixel sky labels
  (BAFE-Net's segmentation head, BAG-CP and the false alarms split by background need them);
* :meth:`SingleFrameDataset.check_config`: a config asks nothing of the layout it lacks.

A dataset object then gives items (:meth:`~SingleFrameDataset.__getitem__`, the sample dict
of :func:`to_sample`), every bad file up front (:meth:`~SingleFrameDataset.find_problems`,
:meth:`~SingleFrameDataset.check`) and the ground truth for evaluation
(:meth:`~SingleFrameDataset.ground_truth`). Coordinate conventions are those of
:mod:`irdet.data.io` (pixel-edge XYXY boxes, pixel-index points). Source: irdet extension.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from irdet.errors import DataError, DataFilesError

__all__ = ["SingleFrameDataset", "to_sample", "attempt"]


class SingleFrameDataset(Dataset, abc.ABC):
    """A single-frame dataset layout: images with pixel-edge boxes of one class ("Target").

    Subclasses set :attr:`name`, :attr:`has_sky_masks`, fill ``root``, ``split``, ``ids`` and
    ``transforms`` in ``__init__(root, split, *, sky_mask=..., target_mask=..., transforms=...)``
    and implement :meth:`resolve_root`, :meth:`split_ids`, :meth:`load_raw`,
    :meth:`find_problems` and :meth:`ground_truth`.

    Items (:meth:`__getitem__`) are the dicts of :func:`to_sample` (``image`` (3, H, W) float32
    in [0, 255], ``boxes`` (N, 4) XYXY pixel-edge, ``labels`` (N,) int64 all 0, ``image_id``,
    ``orig_size`` (H, W), masks when the layout has them and they were asked for), passed
    through ``transforms`` when given.

    Source: irdet extension.
    """

    #: ``data.layout`` name of the layout
    name: str = ""
    #: the layout has per-pixel sky labels (``sky_mask=`` may be asked for)
    has_sky_masks: bool = False

    root: Path
    split: str
    ids: list[str]
    transforms: Callable[[dict], dict] | None

    # ------------------------------------------------------------------ questions before a dataset exists
    @classmethod
    @abc.abstractmethod
    def resolve_root(cls, data: str | os.PathLike | None = None) -> Path:
        """The dataset root: ``data``, else the layout's defaults, checked to be of this layout.

        Raises:
            DataError: the root does not exist or is not of this layout.
            ConfigError: no root given where the layout has no default.
        """

    @classmethod
    @abc.abstractmethod
    def split_ids(cls, root: str | os.PathLike, split: str) -> list[str]:
        """Image ids of ``split`` under ``root``, in the split's order (no image is opened).

        Raises:
            DataError: the split is missing (the message lists the available ones) or empty.
        """

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Refuse a config that asks for what this layout lacks (default: nothing to refuse).

        Raises:
            ConfigError: naming the config switch to turn off.
        """

    # ------------------------------------------------------------------ a dataset
    def __len__(self) -> int:
        return len(self.ids)

    @abc.abstractmethod
    def load_raw(self, index: int) -> dict:
        """Item ``index`` without transforms, as numpy arrays: ``image_id``, ``image`` (H, W, 3)
        float32 in [0, 255], ``boxes`` (N, 4) float32 pixel-edge XYXY, and the masks / points
        asked for (see :func:`to_sample`).

        Raises:
            DataError: a missing or broken file of the item, naming it.
        """

    @abc.abstractmethod
    def find_problems(self) -> list[DataError]:
        """Every bad file this dataset would read, found without decoding pixels (one
        :class:`DataError` per file; empty when all are good)."""

    @abc.abstractmethod
    def ground_truth(self) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
        """Boxes of every image in original pixels and the image sizes, without decoding pixels.

        Returns:
            ``(boxes, sizes)``: id → (N, 4) float32 pixel-edge XYXY boxes, id → (H, W).

        Raises:
            DataError: a missing or unreadable image or annotation file.
        """

    def check(self) -> None:
        """Check every file of the dataset up front (:meth:`find_problems`).

        Raises:
            DataFilesError: naming every bad file at once (first line: the count).

        Source: irdet extension.
        """
        problems = self.find_problems()
        if problems:
            raise DataFilesError(self.root, problems)

    def __getitem__(self, index: int) -> dict:
        sample = to_sample(self.load_raw(index))
        return self.transforms(sample) if self.transforms is not None else sample


def attempt(problems: list[DataError], fn: Callable, *args):
    """``fn(*args)``, or None after appending its :class:`DataError` to ``problems`` (the
    file checks of :meth:`SingleFrameDataset.find_problems` go on past a bad file).
    Source: irdet extension."""
    try:
        return fn(*args)
    except DataError as exc:
        problems.append(exc)
        return None


def to_sample(raw: dict) -> dict:
    """Wrap a raw numpy item into torchvision tv_tensors.

    Args:
        raw: ``image_id``; ``image`` (H, W, 3) float32 in [0, 255]; optional ``boxes`` (N, 4)
            pixel-edge XYXY, ``sky_mask`` / ``target_mask`` (H, W) uint8, ``points`` (M, 2)
            ``(x, y)`` pixel indices.

    Returns:
        ``image_id``, ``orig_size`` (H, W), ``image`` ``tv_tensors.Image`` (3, H, W) float32;
        with boxes: ``boxes`` ``tv_tensors.BoundingBoxes`` (N, 4) XYXY float32,
        ``canvas_size=(H, W)``, and ``labels`` (N,) int64 all 0 (the single class "Target");
        masks as ``tv_tensors.Mask`` (H, W) uint8; ``points`` as ``tv_tensors.KeyPoints`` (M, 2).
    """
    image = raw["image"]
    h, w = image.shape[:2]
    sample = {
        "image_id": raw["image_id"],
        "orig_size": (h, w),
        "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
    }
    if "boxes" in raw:
        boxes = torch.from_numpy(np.asarray(raw["boxes"], dtype=np.float32).reshape(-1, 4))
        sample["boxes"] = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
        sample["labels"] = torch.zeros(len(boxes), dtype=torch.int64)
    for key in ("sky_mask", "target_mask"):
        if key in raw:
            sample[key] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(raw[key])))
    if "points" in raw:
        pts = torch.from_numpy(np.asarray(raw["points"], dtype=np.float32).reshape(-1, 2))
        sample["points"] = tv_tensors.KeyPoints(pts, canvas_size=(h, w))
    return sample
