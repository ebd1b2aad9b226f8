"""Lightning data module for DenseSIRST-layout datasets (train / val / test / predict loaders)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader

from irdet.data.densesirst import DenseSIRST
from irdet.data.transforms import build_test_transforms, build_train_transforms, collate

__all__ = ["DenseSIRSTDataModule", "build_bagcp_transform", "test_transforms_from_cfg"]


def library_cache_path(root: Path, split: str) -> Path:
    """Cache file of the target library built from ``root``/``split``.

    ``$IRDET_CACHE`` (default ``~/.cache/irdet``) / ``target_library_<split>_<hash of the
    resolved root>.npz``.
    """
    base = Path(os.environ.get("IRDET_CACHE") or Path.home() / ".cache" / "irdet")
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return base / f"target_library_{split}_{digest}.npz"


def build_bagcp_transform(cfg: dict, root: Path):
    """BAG-CP transform from ``data.bagcp`` (None when disabled).

    The target library is ``data.bagcp.library`` when given, else built from the training
    split's boxes once and cached (:func:`library_cache_path`).
    """
    bcfg = dict(cfg["data"].get("bagcp") or {})
    if not bcfg.get("enabled", False) or not bcfg.get("copy_paste", True):
        return None
    from irdet.data.bagcp import build_bagcp
    from irdet.data.target_library import TargetLibrary, build_target_library

    lib_path = bcfg.get("library")
    split = cfg["data"]["train_split"]
    if lib_path:
        library = TargetLibrary.load(lib_path)
    else:
        cache = library_cache_path(root, split)
        if cache.is_file():
            library = TargetLibrary.load(cache)
        else:
            print(f"[irdet] building the BAG-CP target library from {root} / {split} (cached in {cache})")
            library = build_target_library(root, split, progress=True)
            library.save(cache)
    return build_bagcp(bcfg, library)


def test_transforms_from_cfg(cfg: dict):
    """The test pipeline (resize + pad) of a config."""
    d = cfg["data"]
    return build_test_transforms(d["img_size"], keep_ratio=d["keep_ratio"], pad_divisor=d["pad_divisor"])


class DenseSIRSTDataModule(L.LightningDataModule):
    """Train on ``data.train_split`` (repeated ``data.repeat`` times per epoch, SPEC §4),
    validate on ``data.val_split``, test/predict on ``data.test_split``.

    Args:
        cfg: full config dict (see :mod:`irdet.config`).
        root: dataset root (DenseSIRST layout).
    """

    def __init__(self, cfg: dict, root: Path):
        super().__init__()
        self.cfg = cfg
        self.root = Path(root)
        self.train_set = self.val_set = self.test_set = None

    def setup(self, stage: str | None = None) -> None:
        d = self.cfg["data"]
        sky = d["sky_mask"] if self.cfg["model"]["head"].get("seg_head", True) or d["bagcp"].get("enabled") else None
        if stage in (None, "fit") and self.train_set is None:
            train_tf = build_train_transforms(
                d["img_size"], keep_ratio=d["keep_ratio"], flip_prob=d["flip_prob"],
                bagcp=build_bagcp_transform(self.cfg, self.root),
                crop=d["crop"], crop_p_target=d["crop_p_target"], crop_on=d["crop_on"],
                pad_divisor=d["pad_divisor"],
            )
            base = DenseSIRST(self.root, d["train_split"], sky_mask=sky, transforms=train_tf)
            self.train_set = ConcatDataset([base] * max(1, int(d["repeat"])))
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = DenseSIRST(self.root, d["val_split"], sky_mask=None, transforms=test_transforms_from_cfg(self.cfg))
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = DenseSIRST(self.root, d["test_split"], sky_mask=None, transforms=test_transforms_from_cfg(self.cfg))

    #: batches samples (the sequence data module batches clips instead)
    collate_fn = staticmethod(collate)

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.cfg["data"]["num_workers"])
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=self.collate_fn,
                          persistent_workers=workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, int(self.cfg["train"]["batch_size"]), True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, int(self.cfg["eval"]["batch_size"]), False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, int(self.cfg["eval"]["batch_size"]), False)

    predict_dataloader = test_dataloader
