"""Lightning data module for DenseSIRST-layout datasets (train / val / test / predict loaders)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader

from irdet.data.densesirst import DenseSIRST
from irdet.data.library_cache import LIBRARY_TARGET_MASK, cached_target_library, library_cache_path
from irdet.data.transforms import build_test_transforms, build_train_transforms, collate
from irdet.engine.resume import train_loader
from irdet.errors import DataFilesError

__all__ = ["DenseSIRSTDataModule", "build_bagcp_transform", "test_transforms_from_cfg", "library_cache_path"]


def build_bagcp_transform(cfg: dict, root: Path):
    """BAG-CP transform from ``data.bagcp`` (None when disabled).

    The target library is ``data.bagcp.library`` when given, else built from the training
    split's boxes once and cached (:func:`irdet.data.library_cache.cached_target_library`:
    rebuilt when the split file or its images/annotations changed).
    """
    bcfg = dict(cfg["data"].get("bagcp") or {})
    if not bcfg.get("enabled", False) or not bcfg.get("copy_paste", True):
        return None
    from irdet.data.bagcp import build_bagcp
    from irdet.data.target_library import TargetLibrary

    lib_path = bcfg.get("library")
    split = cfg["data"]["train_split"]
    if lib_path:
        library = TargetLibrary.load(lib_path)
    else:
        library = cached_target_library(root, split, progress=True)
    return build_bagcp(bcfg, library, img_size=cfg["data"]["img_size"], keep_ratio=cfg["data"]["keep_ratio"])


def test_transforms_from_cfg(cfg: dict):
    """The test pipeline (resize + pad) of a config."""
    d = cfg["data"]
    return build_test_transforms(d["img_size"], keep_ratio=d["keep_ratio"], pad_divisor=d["pad_divisor"])


class DenseSIRSTDataModule(L.LightningDataModule):
    """Train on ``data.train_split`` (repeated ``data.repeat`` times per epoch; 3 in the BAFE-Net protocol),
    validate on ``data.val_split`` (null: no validation set), test/predict on ``data.test_split``.

    Args:
        cfg: full config dict (see :mod:`irdet.config`).
        root: dataset root (DenseSIRST layout).
    """

    def __init__(self, cfg: dict, root: Path):
        super().__init__()
        self.cfg = cfg
        self.root = Path(root)
        self.train_set = self.val_set = self.test_set = None

    def _train_sky_mask(self) -> str | None:
        """Sky masks are read for training when the seg head or BAG-CP needs them."""
        d = self.cfg["data"]
        return d["sky_mask"] if self.cfg["model"]["head"].get("seg_head", True) or d["bagcp"].get("enabled") else None

    def check_files(self, stage: str | None = None) -> None:
        """Check every file ``stage`` will read before anything is built or trained.

        ``fit``: the train split's images, xmls and (when used) sky masks, plus its target
        masks when the BAG-CP library is built from the split; ``fit``/``validate``: the val
        split's images and xmls (:meth:`irdet.data.densesirst.DenseSIRST.find_problems`: headers,
        sizes, xml parsing; 1.5-2 s for ``trainval_v2`` + ``val_v2`` on 2 cores, page cache warm).

        Raises:
            DataFilesError: every bad file of all of them, in one error.

        Source: irdet extension (without it a broken val xml stopped the run after the first
        epoch, a broken sky mask when its image was first drawn).
        """
        d = self.cfg["data"]
        bcfg = d.get("bagcp") or {}
        library_from_split = bcfg.get("enabled", False) and bcfg.get("copy_paste", True) and not bcfg.get("library")
        datasets = []
        if stage in (None, "fit") and self.train_set is None:
            datasets.append(DenseSIRST(self.root, d["train_split"], sky_mask=self._train_sky_mask(),
                                       target_mask=LIBRARY_TARGET_MASK if library_from_split else None))
        if stage in (None, "fit", "validate") and self.val_set is None and d["val_split"] is not None:
            datasets.append(DenseSIRST(self.root, d["val_split"], sky_mask=None))
        problems = [p for ds in datasets for p in ds.find_problems()]
        if problems:
            raise DataFilesError(self.root, problems)

    def setup(self, stage: str | None = None) -> None:
        d = self.cfg["data"]
        sky = self._train_sky_mask()
        self.check_files(stage)
        if stage in (None, "fit") and self.train_set is None:
            train_tf = build_train_transforms(
                d["img_size"], keep_ratio=d["keep_ratio"], flip_prob=d["flip_prob"],
                bagcp=build_bagcp_transform(self.cfg, self.root),
                crop=d["crop"], crop_p_target=d["crop_p_target"], crop_on=d["crop_on"],
                pad_divisor=d["pad_divisor"], tiny_boxes=d.get("tiny_boxes", "keep"),
            )
            base = DenseSIRST(self.root, d["train_split"], sky_mask=sky, transforms=train_tf)
            self.train_set = ConcatDataset([base] * max(1, int(d["repeat"])))
        if stage in (None, "fit", "validate") and self.val_set is None and d["val_split"] is not None:  # null: no validation
            self.val_set = DenseSIRST(self.root, d["val_split"], sky_mask=None, transforms=test_transforms_from_cfg(self.cfg))
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = DenseSIRST(self.root, d["test_split"], sky_mask=None, transforms=test_transforms_from_cfg(self.cfg))

    #: batches samples (the sequence data module batches clips instead)
    collate_fn = staticmethod(collate)

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.cfg["data"]["num_workers"])
        # own generator: creating the loader's iterator draws no number from the training process's torch stream
        # (a validation would otherwise move it, and a run resumed after that validation would not see the move)
        generator = torch.Generator().manual_seed(int(self.cfg["train"]["seed"]) % 2**63)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=self.collate_fn,
                          persistent_workers=workers > 0, drop_last=False, generator=generator)

    def train_dataloader(self):
        """The resumable training loader (:func:`irdet.engine.resume.train_loader`): shuffled by
        ``train.seed`` and the epoch, each sample's augmentations seeded by ``(train.seed, epoch,
        index)``, its position saved in checkpoints. Source: irdet extension."""
        t = self.cfg["train"]
        return train_loader(self.train_set, int(t["batch_size"]), int(self.cfg["data"]["num_workers"]), self.collate_fn,
                            int(t["seed"]), self.trainer)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, int(self.cfg["eval"]["batch_size"]), False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, int(self.cfg["eval"]["batch_size"]), False)

    predict_dataloader = test_dataloader
