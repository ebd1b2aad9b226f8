"""Which splits may select a checkpoint.

``best.ckpt`` is the checkpoint with the highest validation score on ``data.val_split``. That
choice is only honest when the validation images are neither training images nor test images:

* DenseSIRST: ``val_v2`` is a subset of ``trainval_v2`` (all 256 of its images), so training
  on ``trainval_v2`` and selecting on ``val_v2`` selects on training images. Either train on
  ``train_v2`` and select on ``val_v2`` (disjoint), or train on ``trainval_v2`` and keep the
  last checkpoint (``data.val_split: null``: no validation loop, no ``best.ckpt``).
* Selecting on the test split (the reference code picks its checkpoint on ``test_v2``; the
  public sequence sets ship train and test only) reports a number chosen on the test images.

:func:`check_selection` refuses such configs before a run writes anything. Images are
compared by id: the single-frame layout's ids (DenseSIRST ``Splits/<split>.txt``); sequence
splits by their frames (the annotation JSON's ``file_name`` under its image folder, after the
layout's split aliases, e.g. IRDST ``val`` is read as ``test``). Source: irdet extension (the BAFE-Net reference code selects on ``test_v2``; irdet refuses it).
"""

from __future__ import annotations

from pathlib import Path

from irdet.engine.tasks import task_of
from irdet.errors import ConfigError

__all__ = ["split_images", "check_selection"]


def split_images(cfg: dict, root, split: str) -> set[str]:
    """Identities of the images of ``split`` (:meth:`irdet.engine.tasks.Task.split_images`): the
    image ids of the config's single-frame layout (:func:`irdet.data.datasets.split_ids`:
    DenseSIRST ``Splits/<split>.txt`` ids, YOLO-txt image paths), or absolute frame paths
    (without extension) of a ``task: sequence`` split.

    Raises:
        DataError: the split list or annotation file is missing or malformed (naming it).

    Source: irdet extension.
    """
    return task_of(cfg).split_images(cfg, Path(root), split)


def _fixes(cfg: dict) -> str:
    better = task_of(cfg).selection_fix()
    return f"fix: {better}, or keep the last checkpoint without validation (--set data.val_split=null)"


def check_selection(cfg: dict, root) -> None:
    """Refuse a config whose ``data.val_split`` would select ``best.ckpt`` on training or test images.

    Nothing is checked when ``data.val_split`` is null (the run keeps its last checkpoint).

    Raises:
        ConfigError: (one line naming the splits, how many images they share, and the two
            fixes) ``data.val_split`` equals ``data.test_split``, or shares images with
            ``data.train_split``, or shares images with ``data.test_split``.
        DataError: a split list / annotation file is missing or malformed.

    Source: irdet extension enforcing the rule (train on train_v2 and select on val_v2, or
    train on trainval_v2 and keep the last checkpoint).
    """
    d = cfg["data"]
    val, train, test = d["val_split"], d["train_split"], d.get("test_split")
    if val is None:
        return
    val_images = split_images(cfg, root, val)
    if test is not None and val == test:
        raise ConfigError(f"data.val_split and data.test_split are both {val!r} ({len(val_images)} images): best.ckpt would "
                          f"be selected on the test images; {_fixes(cfg)}")
    for role, other, what in (("data.train_split", train, "training"), ("data.test_split", test, "test")):
        if other is None:
            continue
        shared = len(val_images & split_images(cfg, root, other))
        if shared:
            raise ConfigError(f"data.val_split {val!r} shares {shared} of its {len(val_images)} images with {role} "
                              f"{other!r}: best.ckpt would be selected on {what} images; {_fixes(cfg)}")
