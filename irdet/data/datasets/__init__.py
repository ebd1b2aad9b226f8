"""Single-frame dataset layouts, chosen by ``data.layout`` from :data:`DATASETS` (name → class).

A layout class is a :class:`~irdet.data.datasets.base.SingleFrameDataset` (a
``torch.utils.data.Dataset`` of samples with pixel-edge boxes), constructed as
``cls(root, split, sky_mask=..., target_mask=..., transforms=...)``; its class methods answer
what the engine asks before a dataset is opened. The functions here ask them of a config's
layout:

* :func:`resolve_root`: the dataset root (``--data``, else the layout's defaults), after
  :func:`check_layout`;
* :func:`split_ids`: a split's image ids (the split-selection guard compares them);
* :func:`has_sky_masks`: whether the layout has sky masks (BAFE-Net's seg head, BAG-CP and the
  false alarms split by background need them);
* :func:`build_dataset`: a split as a dataset (its ``find_problems()``, ``check()`` and
  ``ground_truth()`` serve training checks and evaluation).

Adding a layout is one new module plus one line in :data:`DATASETS`.
"""

from __future__ import annotations

import os
from pathlib import Path

from irdet.data.datasets.base import SingleFrameDataset
from irdet.data.datasets.densesirst import DenseSIRST
from irdet.data.datasets.yolo_txt import YoloTxt
from irdet.errors import ConfigError

__all__ = ["DATASETS", "dataset_class", "check_layout", "resolve_root", "split_ids", "has_sky_masks", "build_dataset",
           "SingleFrameDataset"]

#: ``data.layout`` name → dataset class
DATASETS: dict[str, type[SingleFrameDataset]] = {"densesirst": DenseSIRST, "yolo_txt": YoloTxt}


def dataset_class(cfg: dict) -> type[SingleFrameDataset]:
    """The dataset class of ``cfg["data"]["layout"]`` (default ``densesirst``).

    Raises:
        ConfigError: unknown layout (the message lists the known ones).
    """
    layout = (cfg.get("data") or {}).get("layout", "densesirst")
    if layout not in DATASETS:
        raise ConfigError(f"data.layout must be one of {sorted(DATASETS)}, got {layout!r}")
    return DATASETS[layout]


def check_layout(cfg: dict) -> None:
    """Refuse a config that asks its layout for what the layout lacks (e.g. sky masks of a
    YOLO-txt dataset for BAFE-Net's seg head or BAG-CP).

    Raises:
        ConfigError: unknown ``data.layout``; naming the config switch to turn off.
    """
    dataset_class(cfg).check_config(cfg)


def resolve_root(cfg: dict, data: str | os.PathLike | None = None) -> Path:
    """The dataset root of ``cfg``'s layout: ``data``, else the layout's defaults (DenseSIRST:
    ``$IRDET_DATA``, the default path, the packaged sample; YOLO-txt: ``$IRDET_DATA``), checked to
    be of that layout, after :func:`check_layout`.

    Raises:
        ConfigError: as :func:`check_layout`; no root given where the layout has no default.
        DataError: the root does not exist or is not of the layout.
    """
    check_layout(cfg)
    return dataset_class(cfg).resolve_root(data)


def split_ids(cfg: dict, root: str | os.PathLike, split: str) -> list[str]:
    """Image ids of ``split`` under ``root`` in ``cfg``'s layout (no image is opened).

    Raises:
        ConfigError: unknown ``data.layout``.
        DataError: the split is missing (the message lists the available ones) or empty.
    """
    return dataset_class(cfg).split_ids(Path(root), split)


def has_sky_masks(cfg: dict) -> bool:
    """True when ``cfg``'s layout has per-pixel sky labels (``sky_mask=`` may be asked for).

    Raises:
        ConfigError: unknown ``data.layout``.
    """
    return dataset_class(cfg).has_sky_masks


def build_dataset(cfg: dict, root: str | Path, split, *, sky_mask: str | None = None, target_mask: str | None = None,
                  transforms=None) -> SingleFrameDataset:
    """Open ``split`` (a split name or a sequence of image ids) of the dataset at ``root`` in the layout of ``cfg``.

    Raises:
        ConfigError: unknown ``data.layout``; as :func:`check_layout`; masks asked of a layout
            without them.
        DataError: as the layout class (missing root or split file).
    """
    check_layout(cfg)
    return dataset_class(cfg)(root, split, sky_mask=sky_mask, target_mask=target_mask, transforms=transforms)
