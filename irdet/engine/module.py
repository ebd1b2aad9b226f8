"""The LightningModule of every task: training losses, validation metrics, prediction.

:class:`DetectorModule` is task-independent: the config's task (:func:`irdet.engine.tasks.task_of`)
builds the network, names the batch's input, turns a batch into prediction items and computes
the validation metrics; the module adds the Lightning steps, the optimizer and the schedule.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.distributed as dist

from irdet.engine.optim import build_optimizer, build_scheduler
from irdet.engine.tasks import task_of

__all__ = ["DetectorModule", "gather_predictions"]


def gather_predictions(preds: dict) -> dict:
    """Union of per-rank prediction dicts under DDP (identity on one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, preds)
        merged: dict = {}
        for part in parts:
            merged.update(part)
        return merged
    return preds


class DetectorModule(L.LightningModule):
    """Training / validation / prediction of a detector (BAFE-Net paper §IV–§V protocol for
    ``task: detect``, the SSTNet protocol for ``task: sequence``).

    Args:
        config: the full config dict (stored in checkpoints as a hyper-parameter, so a
            checkpoint alone rebuilds the model).

    Attributes:
        task: the config's :class:`~irdet.engine.tasks.Task`. model: its network.

    Logged: ``train/loss*`` every ``train.log_every_n_steps``; after each validation
    ``val/<key>`` for the task's ``val_metrics`` (``val/mAP07``, ``val/mAP12``, ``val/recall``,
    ``val/AP75``, ``val/Pd``, ``val/Fa`` for single-frame models; ``val/AP50``, ``val/AP50_95``,
    ``val/precision``, ``val/recall``, ``val/F1``, ``val/Pd``, ``val/Fa`` for sequence models).
    ``predict_step`` returns the task's prediction items (one dict per image or clip:
    ``image_id``, ``boxes`` (K, 4) float32 pixel-edge in original pixels, ``scores`` (K,),
    ``orig_size``, ...; :meth:`irdet.engine.tasks.Task.prediction_items`), then the batch's
    ``skipped`` markers (``{"image_id", "path", "skipped": reason}``, see
    :class:`irdet.data.datasets.inputs.ImageFolder`) unchanged. Under mixed precision the heads
    return float32 outputs (:class:`irdet.models.heads.fcos.FCOSHead`), so losses, assignment and
    decoding run in fp32.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.task = task_of(config)
        self.model = self.task.build_model(config["model"])
        self._val_preds: dict = {}
        self._val_ground_truth = None  # of the val split, read once (the task's ground truth)

    def forward(self, images: torch.Tensor):
        return self.model(images)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(batch)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite loss at step {self.global_step}: { {k: float(v) for k, v in losses.items()} }")
        n = len(batch[self.task.input_key])
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, batch_size=n)
        self.log("loss", losses["loss"].detach(), prog_bar=True, logger=False, batch_size=n)
        d = self.trainer.optimizers[0].param_groups[0].get("d") if self.trainer.optimizers else None
        if d is not None:  # DAdaptAdam's step-size estimate d (the lr is lr x d)
            self.log("train/dadapt_d", float(d), batch_size=n)
        return losses["loss"]

    def _predict(self, batch: dict) -> list[dict]:
        return self.task.prediction_items(self, batch)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        key = self.task.val_key
        for item in self._predict(batch):
            self._val_preds[item[key]] = (item["boxes"], item["scores"])

    def on_validation_epoch_end(self) -> None:
        preds = gather_predictions(self._val_preds)
        self._val_preds = {}
        if self.trainer.sanity_checking:
            return
        if self._val_ground_truth is None:
            self._val_ground_truth = self.task.val_ground_truth(self.trainer.datamodule.val_set)
        partial = self.trainer.limit_val_batches not in (None, 1.0)  # only the images seen are evaluated
        metrics = self.task.validation_metrics(self.config, self._val_ground_truth, preds, partial)
        for key, value in metrics.items():
            self.log(f"val/{key}", value, prog_bar=key in self.task.val_prog_bar, **self.task.val_log)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        # skipped markers of unreadable images (ImageFolder.collate) pass through after the predictions
        return (self._predict(batch) if batch["image_id"] else []) + list(batch.get("skipped", ()))

    def configure_optimizers(self):
        t = self.config["train"]
        optimizer = build_optimizer(self.model, t["lr"], t["weight_decay"])
        batches = math.ceil(len(self.trainer.datamodule.train_set) / (t["batch_size"] * self.trainer.world_size))
        if isinstance(t["limit_train_batches"], int):
            batches = min(batches, t["limit_train_batches"])
        steps_per_epoch = max(1, batches)
        scheduler = build_scheduler(optimizer, steps_per_epoch, t["warmup_iters"], t["warmup_factor"], t["milestones"], t["gamma"])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
