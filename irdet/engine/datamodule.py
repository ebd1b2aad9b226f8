"""The LightningDataModule of every task (train / val / test / predict loaders); the task opens the splits."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader

from irdet.engine.resume import train_loader
from irdet.engine.tasks import task_of

__all__ = ["DataModule"]


class DataModule(L.LightningDataModule):
    """Train on ``data.train_split`` (repeated ``data.repeat`` times per epoch; 3 in the BAFE-Net
    protocol), validate on ``data.val_split`` (null: no validation set), test / predict on
    ``data.test_split``; the config's task (:func:`irdet.engine.tasks.task_of`) opens the splits
    (training or test transforms), checks their files first and batches their items.

    Args:
        cfg: full config dict (see :mod:`irdet.config`).
        root: dataset root (the task's layout).
    """

    def __init__(self, cfg: dict, root: Path):
        super().__init__()
        self.cfg = cfg
        self.root = Path(root)
        self.task = task_of(cfg)
        self.collate_fn = self.task.collate
        self.train_set = self.val_set = self.test_set = None

    def check_files(self, stage: str | None = None) -> None:
        """Check every file ``stage`` will read before anything is built or trained
        (:meth:`irdet.engine.tasks.Task.check_files`: the training split for ``fit``, the
        validation split for ``fit`` / ``validate``).

        Raises:
            DataFilesError: every bad file of all of them, in one error.
        """
        d = self.cfg["data"]
        train = stage in (None, "fit") and self.train_set is None
        val = stage in (None, "fit", "validate") and self.val_set is None and d["val_split"] is not None
        self.task.check_files(self.cfg, self.root, train, val)

    def setup(self, stage: str | None = None) -> None:
        d = self.cfg["data"]
        self.check_files(stage)
        if stage in (None, "fit") and self.train_set is None:
            base = self.task.open_split(self.cfg, self.root, d["train_split"], train=True)
            self.train_set = ConcatDataset([base] * max(1, int(d["repeat"])))
        if stage in (None, "fit", "validate") and self.val_set is None and d["val_split"] is not None:  # null: no validation
            self.val_set = self.task.open_split(self.cfg, self.root, d["val_split"])
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self.task.open_split(self.cfg, self.root, d["test_split"])

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
