"""The :class:`Task` interface: what a task gives the task-independent engine.

A task is one kind of input the detectors take: single-frame images (``task: detect``,
:class:`irdet.engine.tasks.detect.DetectTask`) or clips of T frames (``task: sequence``,
:class:`irdet.engine.tasks.sequence.SequenceTask`). The engine never asks which one a config
is: it looks the task up in :data:`irdet.engine.tasks.TASKS` and calls it for

* the model (:meth:`Task.build_model`) and its cost (:meth:`Task.cost`);
* the data: the dataset root, a split as a Dataset, the batcher, the file checks before
  training, the images of a split (honest checkpoint selection);
* training: the batch key of the network input, the prediction items of a batch, the
  validation metrics and the checkpoint monitor;
* evaluation: the evaluated split and its ground truth, the report of the predictions, the
  evaluation of a results file, the printed table;
* inference: prediction on inputs, per-frame streaming, ``irdet detect``'s output files;
* run keys and ablation tables: the keys a run does not read, the metrics kept.

A task is a stateless object; the classes hold no tensors. Source: irdet extension.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from irdet.errors import ConfigError

__all__ = ["Task", "EvalSet"]


@dataclass
class EvalSet:
    """A split ready to be evaluated: the Dataset (test transforms), its ground truth (read and
    checked before any inference), the dataset root and the split name."""

    dataset: Any
    truth: Any
    root: Path
    split: str


class Task(abc.ABC):
    """One task of the engine (see the module docstring); subclasses set the class attributes
    and implement the abstract methods (the others have defaults).

    Class attributes:
        name: the ``task`` config value (``detect``, ``sequence``).
        input_key: batch key of the network input (``images`` (N, 3, H, W) or ``video``
            (N, T, 3, H, W)); also the ONNX input name.
        input_layout: the input layout written into ONNX metadata (``N,3,H,W``).
        val_key: key of a prediction item that names its image during validation.
        monitor: the logged metric ``best.ckpt`` maximises.
        val_metrics: metrics logged as ``val/<key>`` after each validation, in order;
            ``val_prog_bar`` those shown on the progress bar; ``val_log`` extra
            ``LightningModule.log`` options (DDP reduction).
        result_metrics: metrics an ablation run keeps in ``result.json``; ``table_columns``
            the measured columns of its markdown table; ``paper_columns`` (table header,
            ``paper`` key of a row config) the paper's numbers printed beside them.
        unused_keys: config keys (paths) a run of this task does not read (never hashed into
            run keys); ``root_in_run_key``: ``data.root`` is part of the run key.
        tiling: tiled inference (``eval.tile``) applies.
        streams: inputs are one sequence of frames (:meth:`stream`), not independent images.
    """

    name: str = ""
    input_key: str = ""
    input_layout: str = ""
    val_key: str = "image_id"
    monitor: str = ""
    val_metrics: tuple[str, ...] = ()
    val_prog_bar: tuple[str, ...] = ()
    val_log: dict = {}
    result_metrics: tuple[str, ...] = ()
    table_columns: tuple[str, ...] = ()
    paper_columns: tuple[tuple[str, str], ...] = ()
    unused_keys: tuple[tuple[str, ...], ...] = ()
    root_in_run_key: bool = False
    tiling: bool = False
    streams: bool = False

    def __repr__(self) -> str:
        return f"<irdet task {self.name}>"

    # ------------------------------------------------------------------ model
    @abc.abstractmethod
    def build_model(self, model_cfg: dict):
        """The network of ``config["model"]`` (an ``nn.Module`` with ``loss(batch)`` and
        ``predict(batch)``). Raises ConfigError for a bad model section."""

    @abc.abstractmethod
    def cost(self, cfg: dict) -> dict:
        """``{"params": int, "macs": int | None}`` of ``cfg``'s model at ``data.img_size``."""

    @abc.abstractmethod
    def example_shape(self, model, batch: int, h: int, w: int) -> tuple[int, ...]:
        """Shape of an input tensor of ``batch`` items of H × W pixels for ``model``."""

    # ------------------------------------------------------------------ data
    @abc.abstractmethod
    def resolve_root(self, cfg: dict, data) -> Path:
        """The dataset root a training run reads: ``data`` (the ``--data`` argument), else the
        config's. Raises DataError: no root, or it does not exist."""

    def eval_root(self, cfg: dict, data) -> Path:
        """The dataset root a checkpoint is evaluated on (default: :meth:`resolve_root`)."""
        return self.resolve_root(cfg, data)

    def training_config(self, cfg: dict, root: Path) -> dict:
        """The config a training run's module stores (default: ``cfg`` itself)."""
        return cfg

    @abc.abstractmethod
    def open_split(self, cfg: dict, root: Path, split: str, train: bool = False):
        """``split`` of the dataset at ``root`` as a Dataset with the config's training
        (``train``) or test transforms. Raises DataError naming a missing / broken file."""

    def check_files(self, cfg: dict, root: Path, train: bool, val: bool) -> None:
        """Check the files a training run will read (the training split when ``train``, the
        validation split when ``val``) before anything is built (default: nothing)."""

    @staticmethod
    @abc.abstractmethod
    def collate(samples: list[dict]) -> dict:
        """Batch a list of items of :meth:`open_split`."""

    @abc.abstractmethod
    def split_images(self, cfg: dict, root: Path, split: str) -> set[str]:
        """Identities of the images of ``split`` (two splits share an image when they share an
        identity). Raises DataError: a missing or malformed split file."""

    @abc.abstractmethod
    def selection_fix(self) -> str:
        """How to select honestly (the first fix of a refused ``data.val_split``)."""

    # ------------------------------------------------------------------ training
    @abc.abstractmethod
    def prediction_items(self, module, batch: dict) -> list[dict]:
        """One dict per item of ``batch`` with at least ``image_id``, ``boxes`` (K, 4) float32
        XYXY pixel-edge in original pixels, ``scores`` (K,) and ``orig_size``, from ``module``
        (a :class:`~irdet.engine.module.DetectorModule`) in eval mode."""

    @abc.abstractmethod
    def val_ground_truth(self, val_set):
        """The ground truth of the validation Dataset, read once per run."""

    @abc.abstractmethod
    def validation_metrics(self, cfg: dict, truth, preds: dict, partial: bool) -> dict[str, float]:
        """The :attr:`val_metrics` of ``preds`` (``{val_key: (boxes, scores)}``) against
        ``truth``; ``partial``: only part of the validation split was predicted (evaluate
        those images only)."""

    # ------------------------------------------------------------------ evaluation
    @abc.abstractmethod
    def eval_set(self, cfg: dict, root: Path, split: str | None) -> EvalSet:
        """The split to evaluate (None: the task's default) with its ground truth checked."""

    @abc.abstractmethod
    def report(self, cfg: dict, ev: EvalSet, preds: list[dict], out: Path) -> dict:
        """Metrics of the prediction items ``preds`` of every image of ``ev``; writes
        ``predictions.json``, ``metrics.json`` and ``pr_curve.png`` in ``out``.
        Raises RuntimeError: an image got no prediction."""

    @abc.abstractmethod
    def evaluate_results(self, predictions, data, split: str | None, out: Path, pdfa_score_thr: float,
                         ann=None) -> dict:
        """Metrics of a results file (any method's predictions); writes ``metrics.json`` and
        ``pr_curve.png`` in ``out``. Raises DataError naming a bad file."""

    @abc.abstractmethod
    def format_metrics(self, metrics: dict) -> str:
        """The printed table of :meth:`report`'s metrics."""

    # ------------------------------------------------------------------ inference
    @abc.abstractmethod
    def predict(self, inference, inputs, score_thr: float | None, batch_size: int, num_workers: int,
                errors: str, progress: bool):
        """:class:`~irdet.engine.detections.Results` of ``inputs`` with ``inference`` (an
        :class:`~irdet.engine.predict.Inference`), as :meth:`irdet.api.Model.predict`."""

    def stream(self, inference, frames, score_thr: float | None = None, progress: bool = False) -> Iterator:
        """Per-frame results of one sequence (tasks that :attr:`stream`).

        Raises:
            ConfigError: a task whose inputs are independent images.
        """
        raise ConfigError("stream() is for sequence (multi-frame) models; use predict() for images")

    def open_inputs(self, config: dict, inputs):
        """The inputs of :meth:`predict` as a Dataset of independent images (tasks that do not
        :attr:`stream`); every path checked.

        Raises:
            ConfigError: a task whose inputs are one sequence of frames.
        """
        raise ConfigError("open_inputs() is for single-frame models; a sequence model takes a video, a frame "
                          "folder or a list of frames (predict() / stream())")

    @abc.abstractmethod
    def open_detect_inputs(self, inference, inputs, **options):
        """``irdet detect``'s inputs opened (every path checked) before the out folder is touched."""

    @abc.abstractmethod
    def detect(self, inference, inputs, out: Path, score_thr: float, batch_size: int, num_workers: int,
               **options) -> Path:
        """Write ``irdet detect``'s files for the opened ``inputs`` into the prepared folder
        ``out``; returns the path of ``detections.json``."""

