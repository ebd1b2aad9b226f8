"""``task: detect``: single-frame infrared images (FCOS, BAFE-Net; BAFE-Net paper §IV–§V).

Data: the single-frame layout of ``data.layout`` (:func:`irdet.data.datasets.build_dataset`;
DenseSIRST by default), training transforms (resize, BAG-CP, flip, crop, pad;
:func:`irdet.data.transforms.build_train_transforms`) or test transforms (resize + pad).
Validation and evaluation: the BAFE-Net paper's Table II protocol (mAP07, mAP12, recall,
AP75, Pd, Fa; :func:`irdet.metrics.evaluate`), false alarms also split by the sky masks
(:mod:`irdet.metrics.background`). Inference: images (files, folders, in-memory), one result
each, overlays with the predicted sky tinted for BAFE-Net.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from irdet.data.bagcp import LIBRARY_TARGET_MASK, build_bagcp_transform
from irdet.data.collate import collate
from irdet.data.datasets import build_dataset, dataset_class, resolve_root, split_ids
from irdet.data.datasets.inputs import ImageFolder, InputImages, is_path
from irdet.data.io import atomic_write_json
from irdet.data.transforms import build_test_transforms, build_train_transforms
from irdet.engine.detections import Results, make_result
from irdet.engine.tasks.base import EvalSet, Task
from irdet.errors import ConfigError, DataError, DataFilesError
from irdet.metrics import dets_to_results, evaluate, format_table, load_results, save_results, write_report
from irdet.models import build_detector
from irdet.models.tiling import tile_options

__all__ = ["DetectTask", "test_transforms_from_cfg", "train_transforms_from_cfg"]


def test_transforms_from_cfg(cfg: dict):
    """The test pipeline (resize + pad) of a config."""
    d = cfg["data"]
    return build_test_transforms(d["img_size"], keep_ratio=d["keep_ratio"], pad_divisor=d["pad_divisor"])


def train_transforms_from_cfg(cfg: dict, root: Path):
    """The training pipeline of a config (resize, BAG-CP with the library of ``root``'s
    training split, flip, crop, pad, tiny boxes)."""
    d = cfg["data"]
    return build_train_transforms(
        d["img_size"], keep_ratio=d["keep_ratio"], flip_prob=d["flip_prob"],
        bagcp=build_bagcp_transform(cfg, root),
        crop=d["crop"], crop_p_target=d["crop_p_target"], crop_on=d["crop_on"],
        pad_divisor=d["pad_divisor"], tiny_boxes=d.get("tiny_boxes", "keep"),
    )


def _train_sky_mask(cfg: dict) -> str | None:
    """Sky masks are read for training when the seg head or BAG-CP needs them."""
    d = cfg["data"]
    return d["sky_mask"] if cfg["model"]["head"].get("seg_head", True) or d["bagcp"].get("enabled") else None


def _report(gts: dict, sizes: dict, dets: dict, out: Path, pdfa_score_thr: float, root=None) -> dict:
    """Metrics (false alarms split by background with the ``SkySeg`` masks of ``root``, a note
    when it has none) written to ``out``."""
    from irdet.metrics.background import SkyMasks

    sky = None if root is None else SkyMasks(root, gts)
    metrics = evaluate(gts, dets, sizes, pdfa_score_thr=pdfa_score_thr, sky_masks=sky)
    write_report(out, metrics)
    return metrics


class DetectTask(Task):
    """Single-frame images: see the module docstring.

    Prediction items: ``image_id``, ``boxes`` (K, 4) float32 pixel-edge in original pixels,
    ``scores`` (K,), ``orig_size``, ``path`` (if any) and, for BAFE-Net, ``sky_prob`` (h, w)
    float32 in [0, 1] at the finest level's resolution. With ``eval.tile`` set, validation and
    prediction run tiled (:mod:`irdet.models.tiling`; ``sky_prob`` stitched).
    """

    name = "detect"
    input_key = "images"
    input_layout = "N,3,H,W"
    val_key = "image_id"
    monitor = "val/mAP07"
    val_metrics = ("mAP07", "mAP12", "recall", "AP75", "Pd", "Fa")
    val_prog_bar = ("mAP07", "recall")
    val_log = {"sync_dist": True}  # every rank computed the same value from the gathered predictions
    result_metrics = ("mAP07", "mAP12", "recall", "AP75", "Pd", "Fa")
    table_columns = ("mAP07", "recall", "mAP12")
    paper_columns = (("paper mAP07", "mAP07"), ("paper recall07", "recall07"), ("paper mAP12", "mAP12"))
    tiling = True

    # ------------------------------------------------------------------ model
    def build_model(self, model_cfg: dict):
        return build_detector(model_cfg)

    def cost(self, cfg: dict) -> dict:
        from irdet.models.complexity import complexity

        stats = complexity(build_detector(cfg["model"]), cfg["data"]["img_size"])
        return {"params": stats["params"], "macs": stats["macs"]}

    def example_shape(self, model, batch: int, h: int, w: int) -> tuple[int, ...]:
        return (batch, 3, h, w)

    # ------------------------------------------------------------------ data
    def resolve_root(self, cfg: dict, data) -> Path:
        return resolve_root(cfg, data or cfg["data"]["root"])

    def eval_root(self, cfg: dict, data) -> Path:
        # a checkpoint is evaluated on --data, else $IRDET_DATA / the default root, not on its config's root
        return resolve_root(cfg, data)

    def open_split(self, cfg: dict, root: Path, split: str, train: bool = False):
        if train:
            return build_dataset(cfg, root, split, sky_mask=_train_sky_mask(cfg), transforms=train_transforms_from_cfg(cfg, root))
        return build_dataset(cfg, root, split, sky_mask=None, transforms=test_transforms_from_cfg(cfg))

    def check_files(self, cfg: dict, root: Path, train: bool, val: bool) -> None:
        """Check every image, xml and (when used) sky mask of the training split, plus its
        target masks when the BAG-CP library is built from the split, and the validation
        split's images and xmls (``find_problems`` of the layout: headers, sizes, xml parsing;
        1.5-2 s for ``trainval_v2`` + ``val_v2`` on 2 cores, page cache warm).

        Raises:
            DataFilesError: every bad file of all of them, in one error.

        Source: irdet extension (without it a broken val xml stopped the run after the first
        epoch, a broken sky mask when its image was first drawn).
        """
        d = cfg["data"]
        bcfg = d.get("bagcp") or {}
        library_from_split = bcfg.get("enabled", False) and bcfg.get("copy_paste", True) and not bcfg.get("library")
        datasets = []
        if train:
            datasets.append(build_dataset(cfg, root, d["train_split"], sky_mask=_train_sky_mask(cfg),
                                          target_mask=LIBRARY_TARGET_MASK if library_from_split else None))
        if val:
            datasets.append(build_dataset(cfg, root, d["val_split"], sky_mask=None))
        problems = [p for ds in datasets for p in ds.find_problems()]
        if problems:
            raise DataFilesError(root, problems)

    collate = staticmethod(collate)

    def split_images(self, cfg: dict, root: Path, split: str) -> set[str]:
        """The image ids of the split (:func:`irdet.data.datasets.split_ids`)."""
        return set(split_ids(cfg, Path(root), split))

    def selection_fix(self) -> str:
        return "train on train_v2 and select on val_v2 (--set data.train_split=train_v2 data.val_split=val_v2)"

    # ------------------------------------------------------------------ training
    def prediction_items(self, module, batch: dict) -> list[dict]:
        # eval.tile null (the default): the whole input in one pass; else tiled (irdet.models.tiling)
        dets, out = module.model.predict(batch, **tile_options(module.config))
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
                stride = module.model.head.strides[0]
                item["sky_prob"] = sky[0][i, 0, : math.ceil(h / stride), : math.ceil(w / stride)].sigmoid().float().cpu().numpy()
            results.append(item)
        return results

    def val_ground_truth(self, val_set):
        return val_set.ground_truth()

    def validation_metrics(self, cfg: dict, truth, preds: dict, partial: bool) -> dict[str, float]:
        boxes, sizes = truth
        ids = [i for i in boxes if i in preds] if partial else list(boxes)
        gts = {i: boxes[i] for i in ids}
        dets = {i: preds.get(i, (np.zeros((0, 4)), np.zeros(0))) for i in ids}
        m = evaluate(gts, dets, {i: sizes[i] for i in ids}, pdfa_score_thr=cfg["eval"]["pdfa_score_thr"])
        return {key: float(m[key]) for key in self.val_metrics}

    # ------------------------------------------------------------------ evaluation
    def eval_set(self, cfg: dict, root: Path, split: str | None) -> EvalSet:
        """``split`` (default ``test_v2``) with its boxes and image sizes (every annotation
        validated before any inference)."""
        split = split or "test_v2"
        dataset = build_dataset(cfg, root, split, sky_mask=None, transforms=test_transforms_from_cfg(cfg))
        return EvalSet(dataset, dataset.ground_truth(), root, split)

    def report(self, cfg: dict, ev: EvalSet, preds: list[dict], out: Path) -> dict:
        """Table II metrics (plus the false alarms by background, :mod:`irdet.metrics.background`);
        ``predictions.json`` in the results format (xml numbers)."""
        gts, sizes = ev.truth
        dets = {p["image_id"]: (p["boxes"], p["scores"]) for p in preds}
        missing = set(ev.dataset.ids) - set(dets)
        if missing:  # never drop an image silently
            raise RuntimeError(f"{len(missing)} images of {ev.split} got no prediction pass: {sorted(missing)[:5]}")
        save_results(out / "predictions.json", dets_to_results(dets))
        return _report(gts, sizes, dets, out, cfg["eval"]["pdfa_score_thr"], ev.root)

    def evaluate_results(self, predictions, data, split: str | None, out: Path, pdfa_score_thr: float,
                         ann=None) -> dict:
        """A results file on ``split`` (default ``test_v2``) of the root ``data``.

        Raises:
            DataError: unreadable / malformed results file, or results for images not in the
                split (naming the file).
        """
        split = split or "test_v2"
        dets = load_results(predictions)
        layout = dataset_class({})  # a results file has no config: the default layout
        dataset = layout(layout.resolve_root(data), split, sky_mask=None)
        unknown = sorted(set(dets) - set(dataset.ids))
        if unknown:
            raise DataError(predictions, f"{len(unknown)} image ids are not in split {split}: {', '.join(unknown[:5])}")
        gts, sizes = dataset.ground_truth()
        return _report(gts, sizes, dets, out, pdfa_score_thr, dataset.root)

    def format_metrics(self, metrics: dict) -> str:
        return format_table(metrics)

    # ------------------------------------------------------------------ inference
    def open_inputs(self, config: dict, inputs):
        """The :class:`~irdet.data.datasets.inputs.InputImages` of ``inputs`` with the config's
        test transforms; checks that every path exists (DataError otherwise)."""
        if isinstance(inputs, InputImages):
            return inputs
        return InputImages(inputs, transforms=test_transforms_from_cfg(config))

    def predict(self, inference, inputs, score_thr: float | None, batch_size: int, num_workers: int,
                errors: str, progress: bool) -> Results:
        """One result per image of ``inputs`` (:meth:`open_inputs`), in input order; an unreadable
        image raises DataError (``errors="raise"``) or is listed in ``Results.skipped``."""
        from torch.utils.data import DataLoader

        dataset = self.open_inputs(inference.config, inputs)
        results = Results(skipped=[{"path": str(p), "reason": r} for p, r in dataset.skipped])
        loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers),
                            collate_fn=ImageFolder.collate)
        amp = inference.amp()
        with tqdm(total=len(dataset), desc="detect", unit="img", disable=not progress) as bar:
            for index, batch in enumerate(loader):
                if batch["image_id"]:
                    batch["images"] = batch["images"].to(inference.device)
                with torch.no_grad(), amp:
                    items = inference.module.predict_step(batch, index)
                for item in items:
                    if "skipped" in item:
                        if errors == "raise":
                            raise DataError(item["path"], item["skipped"])
                        results.skipped.append({"path": item["path"], "reason": item["skipped"]})
                        continue
                    source = dataset.sources.get(item["image_id"])
                    results.append(make_result(item, score_thr, source=None if is_path(source) else source))
                bar.update(len(items))
        return results

    def open_detect_inputs(self, inference, inputs, track: bool = False, **options):
        """:meth:`open_inputs` (missing inputs are refused before ``--out`` is touched).

        Raises:
            ConfigError: ``track`` (linking needs the frames of a sequence).
        """
        if track:
            raise ConfigError("--track links detections across the frames of a video or frame folder: it needs a "
                              "sequence (task: sequence) checkpoint")
        return self.open_inputs(inference.config, inputs)

    def detect(self, inference, inputs, out: Path, score_thr: float, batch_size: int, num_workers: int,
               **options) -> Path:
        """``detections.json`` (results format, all kept detections, the xml's numbers),
        ``overlays/<image id>.png`` (boxes with score ≥ ``score_thr``; sky tinted for BAFE-Net)
        and ``summary.json`` ``{"images": [{"image_id", "path", "overlay"}], "skipped": [{"path",
        "reason"}]}``; unreadable images are skipped (listed), the others processed. Through
        :meth:`predict` (``errors="skip"``), so a script gets the same detections. ``options``
        of sequence detection (``fps``, ``save_frames``) do not apply and are ignored."""
        results = self.predict(inference, inputs, None, batch_size, num_workers, "skip", True)
        save_results(out / "detections.json", results.to_results())
        images = []
        for r in tqdm(results, desc="overlays", unit="img"):
            overlay_path = Path("overlays") / f"{r.image_id}.png"
            r.save(out / overlay_path, score_thr)
            images.append({"image_id": r.image_id, "path": r.path, "overlay": overlay_path.as_posix()})
        atomic_write_json(out / "summary.json", {"images": images, "skipped": results.skipped})
        return out / "detections.json"
