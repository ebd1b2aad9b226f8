"""LightningModule wrapping a single-frame detector: training losses, validation mAP, prediction."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from irdet.engine.optim import build_optimizer, build_scheduler
from irdet.metrics import evaluate
from irdet.models.detector import build_detector
from irdet.models.tiling import tile_options

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
    """Training / validation / prediction for FCOS and BAFE-Net (BAFE-Net paper §IV–§V, Table II protocol).

    Args:
        config: the full config dict (stored in checkpoints as a hyper-parameter, so a
            checkpoint alone rebuilds the model).

    Logged: ``train/loss*`` every ``train.log_every_n_steps``; after each validation
    ``val/mAP07``, ``val/mAP12``, ``val/recall``, ``val/AP75``, ``val/Pd``, ``val/Fa``.
    ``predict_step`` returns one dict per image: ``image_id``, ``boxes`` (K, 4) float32
    pixel-edge in original pixels, ``scores`` (K,), ``orig_size``, ``path`` (if any) and, for
    BAFE-Net, ``sky_prob`` (h, w) float32 in [0, 1] at the finest level's resolution; then
    the batch's ``skipped`` markers (``{"image_id", "path", "skipped": reason}``, see
    :class:`irdet.data.densesirst.ImageFolder`) unchanged. With ``eval.tile`` set, validation and
    prediction run tiled (:mod:`irdet.models.tiling`; ``sky_prob`` stitched). Under mixed precision the heads
    return float32 outputs (:class:`irdet.models.heads.fcos.FCOSHead`), so losses, assignment and
    decoding run in fp32.
    """

    #: builds the network from ``config["model"]``; key of the input tensor in a batch
    build_model = staticmethod(build_detector)
    input_key = "images"

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.model = self.build_model(config["model"])
        self._val_preds: dict = {}
        self._val_ground_truth: tuple[dict, dict] | None = None  # (boxes, sizes) of the val split, cached

    def forward(self, images: torch.Tensor):
        return self.model(images)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(batch)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite loss at step {self.global_step}: { {k: float(v) for k, v in losses.items()} }")
        n = len(batch[self.input_key])
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, batch_size=n)
        self.log("loss", losses["loss"].detach(), prog_bar=True, logger=False, batch_size=n)
        return losses["loss"]

    def _predict(self, batch: dict) -> list[dict]:
        # eval.tile null (the default): the whole input in one pass; else tiled (irdet.models.tiling)
        dets, out = self.model.predict(batch, **tile_options(self.config))
        sky = out.get("seg_logits")
        results = []
        for i, det in enumerate(dets):
            item = {
                "image_id": batch["image_id"][i],
                "boxes": det["boxes"].float().cpu().numpy(),
                "scores": det["scores"].float().cpu().numpy(),
                "orig_size": tuple(batch["orig_size"][i]),
            }
            if "path" in batch:
                item["path"] = batch["path"][i]
            if sky is not None:
                h, w = batch["img_size"][i]
                stride = self.model.head.strides[0]
                item["sky_prob"] = sky[0][i, 0, : math.ceil(h / stride), : math.ceil(w / stride)].sigmoid().float().cpu().numpy()
            results.append(item)
        return results

    #: key of a prediction item that identifies its image in ``_val_preds``
    val_key = "image_id"

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        for item in self._predict(batch):
            self._val_preds[item[self.val_key]] = (item["boxes"], item["scores"])

    def on_validation_epoch_end(self) -> None:
        preds = gather_predictions(self._val_preds)
        self._val_preds = {}
        if self.trainer.sanity_checking:
            return
        if self._val_ground_truth is None:
            self._val_ground_truth = self.trainer.datamodule.val_set.ground_truth()
        boxes, sizes = self._val_ground_truth
        ids = [i for i in boxes if i in preds] if self.trainer.limit_val_batches not in (None, 1.0) else list(boxes)
        gts = {i: boxes[i] for i in ids}
        dets = {i: preds.get(i, (np.zeros((0, 4)), np.zeros(0))) for i in ids}
        m = evaluate(gts, dets, {i: sizes[i] for i in ids}, pdfa_score_thr=self.config["eval"]["pdfa_score_thr"])
        for key in ("mAP07", "mAP12", "recall", "AP75", "Pd", "Fa"):
            # every rank computed the same value from the gathered predictions
            self.log(f"val/{key}", float(m[key]), prog_bar=key in ("mAP07", "recall"), sync_dist=True)

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
