"""The main jobs: train, evaluate (a checkpoint or a results file), detect. The CLI calls these."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from irdet.config import config_task
from irdet.data.densesirst import DenseSIRST, ImageFolder, resolve_data_root
from irdet.data.io import atomic_save_image, atomic_write_bytes, read_image
from irdet.data.transforms import collate
from irdet.engine.datamodule import DenseSIRSTDataModule, test_transforms_from_cfg
from irdet.engine.module import DetectorModule
from irdet.errors import DataError
from irdet.metrics import dets_to_results, evaluate, load_results, save_results, write_report
from irdet.visualize import overlay

__all__ = ["train", "load_checkpoint", "predict", "evaluate_checkpoint", "evaluate_predictions", "detect"]


def _trainer_kwargs(t: dict) -> dict:
    return {"accelerator": t["accelerator"], "devices": t["devices"], "num_nodes": t["num_nodes"],
            "strategy": t["strategy"], "precision": t["precision"]}


def _set_threads(t: dict) -> None:
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))


def train(cfg: dict, data: str | None = None, out: str | Path | None = None, resume: str | bool | None = None) -> Path:
    """Train a detector (SPEC §4) with PyTorch Lightning.

    Writes ``<out>/config.yaml``, ``<out>/checkpoints/{last,best}.ckpt`` (``best`` = highest
    ``val/mAP07`` on ``data.val_split``; ``last`` every ``train.checkpoint_every_n_steps``
    steps and at the end), CSV logs under ``<out>/logs/``. ``task: sequence`` configs train the
    multi-frame detector (:func:`irdet.engine.sequence.build_sequence_training`; ``best`` on
    ``val/AP50``) with the same trainer, checkpoints, logs and resume.

    Args:
        cfg: full config (:func:`irdet.config.load_config`).
        data: dataset root (else ``data.root``, ``$IRDET_DATA``, the default path).
        out: run directory (default ``runs/<config name>``).
        resume: True to continue from ``<out>/checkpoints/last.ckpt``, or a checkpoint path.

    Returns:
        the run directory.

    Raises:
        DataError: bad data root, or the checkpoint to resume from does not exist.
    """
    t = cfg["train"]
    sequence = config_task(cfg) == "sequence"  # task hook (issue 5): module/data/monitor from irdet.engine.sequence
    if sequence:
        from irdet.engine.sequence import build_sequence_training, resolve_sequence_root

        root = resolve_sequence_root(data, cfg)
    else:
        root = resolve_data_root(data or cfg["data"]["root"])
    out_dir = Path(out or Path("runs") / cfg["name"])
    ckpt_dir = out_dir / "checkpoints"
    ckpt_path = None
    if resume:
        ckpt_path = ckpt_dir / "last.ckpt" if resume is True else Path(resume)
        if not ckpt_path.is_file():
            raise DataError(ckpt_path, "checkpoint to resume from not found")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "config.yaml", yaml.safe_dump({**cfg, "data": {**cfg["data"], "root": str(root)}}, sort_keys=False).encode())
    _set_threads(t)
    L.seed_everything(int(t["seed"]), workers=True)
    if sequence:
        module, datamodule, monitor, _ = build_sequence_training(cfg, root)
    else:
        module = DetectorModule(cfg)
        datamodule = DenseSIRSTDataModule(cfg, root)
        monitor = "val/mAP07"
    callbacks = [
        ModelCheckpoint(ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1, auto_insert_metric_name=False),
        ModelCheckpoint(ckpt_dir, filename="last", every_n_train_steps=int(t["checkpoint_every_n_steps"]), save_top_k=1,
                        enable_version_counter=False),
        ModelCheckpoint(ckpt_dir, filename="last", save_on_train_epoch_end=True, save_top_k=1, enable_version_counter=False),
        LearningRateMonitor("step"),
        TQDMProgressBar(refresh_rate=10),
    ]
    trainer = L.Trainer(
        **_trainer_kwargs(t),
        max_epochs=int(t["max_epochs"]),
        max_steps=int(t["max_steps"]),
        callbacks=callbacks,
        logger=CSVLogger(out_dir, name="logs"),
        check_val_every_n_epoch=int(t["val_interval"]),
        log_every_n_steps=int(t["log_every_n_steps"]),
        limit_train_batches=t["limit_train_batches"],
        limit_val_batches=t["limit_val_batches"],
        num_sanity_val_steps=0,
        default_root_dir=out_dir,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return out_dir


def _checkpoint_task(path: Path) -> str:
    """Task of a checkpoint's stored config (``detect`` or ``sequence``); reads the file memory-mapped."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # not a zip checkpoint (mmap needs one): read it plainly
        state = torch.load(path, map_location="cpu", weights_only=False)
    return config_task(state["hyper_parameters"]["config"])


def load_checkpoint(path: str | Path) -> DetectorModule:
    """Load a training checkpoint on the CPU (a :class:`SequenceModule` for ``task: sequence``).

    Raises:
        DataError: missing file, or not an irdet checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        module_cls = DetectorModule
        if _checkpoint_task(path) == "sequence":
            from irdet.engine.sequence import SequenceModule as module_cls
        module = module_cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - corrupt / foreign checkpoints are user errors
        raise DataError(path, f"not a readable irdet checkpoint ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    module.eval()
    return module


def predict(module: DetectorModule, dataset, batch_size: int = 2, accelerator: str = "auto", num_workers: int = 2,
            collate_fn=collate) -> list[dict]:
    """Run ``module`` over ``dataset`` (test transforms) with a Lightning progress bar.

    Returns one dict per image (see :class:`DetectorModule`). ``collate_fn``: the batcher
    (:func:`irdet.engine.sequence.collate_clips` for clips).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_fn)
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        callbacks=[TQDMProgressBar(refresh_rate=5)])
    batches = trainer.predict(module, loader)
    return [item for batch in batches for item in batch]


def _report(gts_edges: dict, sizes: dict, dets: dict, out: Path, pdfa_score_thr: float) -> dict:
    gts = {i: b for i, b in gts_edges.items()}
    metrics = evaluate(gts, dets, sizes, pdfa_score_thr=pdfa_score_thr)
    write_report(out, metrics)
    return metrics


def evaluate_checkpoint(checkpoint, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                        accelerator: str = "auto", batch_size: int | None = None, num_workers: int = 2) -> dict:
    """Evaluate a checkpoint on a split (SPEC §6): writes ``predictions.json``, ``metrics.json``,
    ``pr_curve.png`` in ``out`` and returns the metrics dict.

    A ``task: sequence`` checkpoint is evaluated by :func:`irdet.engine.sequence.evaluate_module`
    (SSTNet protocol; ``split`` None = its ``data.test_split``, ``data`` None = its training root).
    """
    module = load_checkpoint(checkpoint)
    cfg = module.config
    if config_task(cfg) == "sequence":
        from irdet.engine.sequence import evaluate_module

        return evaluate_module(module, data, split, out, accelerator, batch_size, num_workers)
    split = split or "test_v2"
    root = resolve_data_root(data)
    dataset = DenseSIRST(root, split, sky_mask=None, transforms=test_transforms_from_cfg(cfg))
    gts, sizes = dataset.ground_truth()  # validate every annotation before spending time on inference
    preds = predict(module, dataset, batch_size or cfg["eval"]["batch_size"], accelerator, num_workers)
    dets = {p["image_id"]: (p["boxes"], p["scores"]) for p in preds}
    missing = set(dataset.ids) - set(dets)
    if missing:  # never drop an image silently
        raise RuntimeError(f"{len(missing)} images of {split} got no prediction pass: {sorted(missing)[:5]}")
    out = Path(out)
    save_results(out / "predictions.json", dets_to_results(dets))
    return _report(gts, sizes, dets, out, cfg["eval"]["pdfa_score_thr"])


def evaluate_predictions(predictions, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                         pdfa_score_thr: float = 0.5, ann=None) -> dict:
    """Evaluate a COCO-style results file (any method's predictions) on a split.

    With ``ann`` (a COCO annotation file of a sequence split), the file is evaluated with the
    moving-target protocol instead (:func:`irdet.engine.sequence.evaluate_predictions`).

    Raises:
        DataError: unreadable/malformed results file, or results for images not in the split
            (naming the file); bad annotation files (naming them).
    """
    if ann is not None:
        from irdet.engine.sequence import evaluate_predictions as evaluate_sequence_predictions

        return evaluate_sequence_predictions(predictions, ann, out, pdfa_score_thr, data)
    split = split or "test_v2"
    dets = load_results(predictions)
    dataset = DenseSIRST(resolve_data_root(data), split, sky_mask=None)
    unknown = sorted(set(dets) - set(dataset.ids))
    if unknown:
        raise DataError(predictions, f"{len(unknown)} image ids are not in split {split}: {', '.join(unknown[:5])}")
    gts, sizes = dataset.ground_truth()
    return _report(gts, sizes, dets, Path(out), pdfa_score_thr)


def detect(checkpoint, inputs, out: str | Path = "detections", score_thr: float = 0.3, accelerator: str = "auto",
           batch_size: int = 1, num_workers: int = 2, **sequence_options) -> Path:
    """Run a checkpoint on images (files or folders, any size and mode).

    Writes ``out/detections.json`` (results format, all kept detections, the xml's numbers) and
    ``out/overlays/<image id>.png`` (boxes with score ≥ ``score_thr``; sky tinted for BAFE-Net).
    A ``task: sequence`` checkpoint takes one frame folder or video file instead
    (:func:`irdet.engine.sequence.detect_module`; ``sequence_options``: ``fps``, ``save_frames``).

    Returns:
        the path of ``detections.json``.
    """
    module = load_checkpoint(checkpoint)
    if config_task(module.config) == "sequence":
        from irdet.engine.sequence import detect_module

        return detect_module(module, inputs, out, score_thr, accelerator, **sequence_options)
    dataset = ImageFolder(inputs, transforms=test_transforms_from_cfg(module.config))
    preds = predict(module, dataset, batch_size, accelerator, num_workers)
    out = Path(out)
    dets = {p["image_id"]: (p["boxes"], p["scores"]) for p in preds}
    save_results(out / "detections.json", dets_to_results(dets))
    for p in tqdm(preds, desc="overlays", unit="img"):
        keep = p["scores"] >= score_thr
        img = overlay(read_image(p["path"]), p["boxes"][keep], p.get("sky_prob"))
        atomic_save_image(out / "overlays" / f"{p['image_id']}.png", img)
    return out / "detections.json"
