"""``irdet evaluate``: a model on a split, or a results file, with its task's protocol.

The task (:func:`irdet.engine.tasks.task_of` of the model's config; :func:`~irdet.engine.tasks.results_task`
for a results file) chooses the split, reads its ground truth, writes the report and prints
the table: the BAFE-Net paper's Table II protocol for single-frame models, the SSTNet protocol
for sequence models. :func:`evaluate_model` / :func:`evaluate_results` return the task with
the metrics (the CLI prints ``task.format_metrics(metrics)``); :func:`evaluate_checkpoint` and
:func:`evaluate_predictions` return the metrics alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from irdet.engine.predict import inference_precision, load_model, predict, set_tiling
from irdet.engine.tasks import Task, results_task, task_of

__all__ = ["Evaluation", "evaluate_model", "evaluate_results", "evaluate_checkpoint", "evaluate_predictions"]


class Evaluation(NamedTuple):
    """The metrics dict of an evaluation and the task whose protocol measured them."""

    task: Task
    metrics: dict


def evaluate_model(checkpoint, data: str | None = None, split: str | None = None, out: str | Path = "eval",
                   accelerator: str = "auto", batch_size: int | None = None, num_workers: int = 2,
                   precision: str | None = None, tile=None, tile_overlap: int | None = None,
                   backend: str | None = None) -> Evaluation:
    """Evaluate a checkpoint on a split: writes ``predictions.json``, ``metrics.json`` and
    ``pr_curve.png`` in ``out``.

    Args:
        checkpoint: a ``.ckpt`` / ``.pt`` / ``.onnx`` file, or None for the shipped default
            model (:func:`irdet.engine.predict.load_model`).
        data: dataset root (single-frame models: else ``$IRDET_DATA``, then the layout's
            default; sequence models: else the root they were trained on).
        split: None = the task's default (``test_v2``; a sequence model's ``data.test_split``).
        batch_size: images (clips) per batch (default ``eval.batch_size``).
        precision: None = the checkpoint config's ``train.precision`` (resolved for the device,
            :func:`irdet.engine.precision.resolve_precision`).
        tile, tile_overlap: (h, w) and pixels of the network input over the config's
            ``eval.tile`` / ``eval.tile_overlap``: tiled inference, :mod:`irdet.models.tiling`
            (irdet extension; single-frame models).
        backend: :func:`irdet.engine.predict.load_model` (``onnxruntime``: the same data,
            decoding and metrics, the network run by ONNX Runtime; an ``.onnx`` file implies it).

    Single-frame models also split the false alarms by background with the root's ``SkySeg``
    masks (:mod:`irdet.metrics.background`; a note in place of the split when an image has no
    mask); sequence models add AP50 per SNR bin and distractor false alarms where the
    annotations allow them (:mod:`irdet.metrics.synthetic`).

    Raises:
        DataError: unreadable model, bad root / split / annotation files (naming the file).
        ConfigError: bad backend / precision / tile options. RuntimeError: an image got no
            prediction.
    """
    module = load_model(checkpoint, backend)
    set_tiling(module, tile, tile_overlap)
    cfg = module.config
    precision = inference_precision(module, precision)
    task = task_of(cfg)
    ev = task.eval_set(cfg, task.eval_root(cfg, data), split)  # ground truth checked before any inference
    preds = predict(module, ev.dataset, batch_size or cfg["eval"]["batch_size"], accelerator, num_workers,
                    collate_fn=task.collate, precision=precision)
    return Evaluation(task, task.report(cfg, ev, preds, Path(out)))


def evaluate_results(predictions, data: str | None = None, split: str | None = None, out: str | Path = "eval",
                     pdfa_score_thr: float = 0.5, ann=None) -> Evaluation:
    """Evaluate a COCO-style results file (any method's predictions).

    Without ``ann``: on ``split`` (default ``test_v2``) of the single-frame dataset at ``data``
    (false alarms also split by background, as :func:`evaluate_model`). With ``ann`` (a COCO
    annotation file of a sequence split), with the moving-target protocol instead.
    Writes ``metrics.json`` and ``pr_curve.png`` in ``out``.

    Raises:
        DataError: unreadable/malformed results file, or results for images not in the split
            (naming the file); bad annotation files (naming them).
    """
    task = results_task(ann)
    return Evaluation(task, task.evaluate_results(predictions, data, split, Path(out), pdfa_score_thr, ann))


def evaluate_checkpoint(checkpoint, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                        accelerator: str = "auto", batch_size: int | None = None, num_workers: int = 2,
                        precision: str | None = None, tile=None, tile_overlap: int | None = None,
                        backend: str | None = None) -> dict:
    """The metrics dict of :func:`evaluate_model` (``split`` None: the task's default)."""
    return evaluate_model(checkpoint, data, split, out, accelerator, batch_size, num_workers, precision, tile,
                          tile_overlap, backend).metrics


def evaluate_predictions(predictions, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                         pdfa_score_thr: float = 0.5, ann=None) -> dict:
    """The metrics dict of :func:`evaluate_results`."""
    return evaluate_results(predictions, data, split, out, pdfa_score_thr, ann).metrics
