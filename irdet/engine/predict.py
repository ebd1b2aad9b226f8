"""Loading a model (training checkpoint, packaged weights, ONNX file) and running it.

* :func:`load_checkpoint` / :func:`load_model`: a :class:`~irdet.engine.module.DetectorModule`
  from any model file, on the PyTorch or ONNX Runtime backend;
* :func:`set_tiling`, :func:`inference_precision`: the inference options over the stored config;
* :class:`Inference`: a loaded module on its device and in its precision, what the tasks'
  prediction, streaming and ``irdet detect`` run with;
* :func:`predict`: a module over a whole dataset with Lightning (evaluation).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader

from irdet.data.collate import collate
from irdet.deploy.runtime import load_onnx, onnx_module
from irdet.engine import zoo
from irdet.engine.checkpoints import read_checkpoint_file
from irdet.engine.module import DetectorModule
from irdet.engine.precision import autocast_context, resolve_precision
from irdet.engine.tasks import task_of
from irdet.errors import ConfigError, DataError
from irdet.models.tiling import check_tile_options, tile_options

__all__ = ["BACKENDS", "load_checkpoint", "load_model", "set_tiling", "inference_precision", "inference_device",
           "Inference", "predict"]

#: inference backends of ``irdet evaluate`` / ``irdet detect`` / :func:`irdet.load`
BACKENDS = ("pytorch", "onnxruntime")


def load_checkpoint(path: str | Path | None = None) -> DetectorModule:
    """Load a model on the CPU, in eval mode (a :class:`DetectorModule` of its config's task).

    Args:
        path: a Lightning training checkpoint (``.ckpt``), a packaged weights file (``.pt``,
            :func:`irdet.engine.zoo.load_weights`), an ``irdet export`` ONNX file (``.onnx``:
            an ONNX Runtime module, :func:`irdet.deploy.runtime.load_onnx`), or None for the
            shipped default model (:data:`irdet.engine.zoo.DEFAULT_MODEL`).

    Raises:
        DataError: missing file, or not an irdet checkpoint / weights / ONNX file; None when
            this irdet ships no default model.
        IrdetError: an ``.onnx`` file without the ``export`` extra installed.
    """
    path = Path(zoo.default_model_for([]) if path is None else path)
    if path.suffix == ".onnx":
        return load_onnx(path)
    if zoo.is_weights_file(path):
        return zoo.load_weights(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        read_checkpoint_file(path)["hyper_parameters"]["config"]  # an irdet training checkpoint (memory-mapped read)
        module = DetectorModule.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - corrupt / foreign checkpoints are user errors
        raise DataError(path, f"not a readable irdet checkpoint ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    module.eval()
    return module


def load_model(path: str | Path | None = None, backend: str | None = None):
    """:func:`load_checkpoint`, on the inference ``backend``.

    Args:
        backend: None (by the file: ``onnxruntime`` for ``.onnx``, else ``pytorch``),
            ``"pytorch"``, or ``"onnxruntime"``: a checkpoint / weights file is then exported to
            ONNX in memory (dynamic H/W) and run by ONNX Runtime
            (:func:`irdet.deploy.runtime.onnx_module`; irdet extension).

    Raises:
        ConfigError: unknown backend; ``pytorch`` asked of an ``.onnx`` file.
        DataError / IrdetError: as :func:`load_checkpoint`; the export extra missing.
    """
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    module = load_checkpoint(path)
    current = getattr(module, "backend", "pytorch")
    if backend in (None, current):
        return module
    if current == "onnxruntime":
        raise ConfigError(f"{path}: an ONNX model runs with the onnxruntime backend only")
    return onnx_module(module)


def set_tiling(module, tile=None, tile_overlap: int | None = None) -> None:
    """Apply ``--tile H W`` / ``--tile-overlap PX`` over the checkpoint config's ``eval.tile`` /
    ``eval.tile_overlap`` (in ``module.config``) and check the result against the model, before
    any inference (irdet extension, :mod:`irdet.models.tiling`).

    Raises:
        ConfigError: tiling asked of a model whose task has no tiled inference (``task:
            sequence``); ``tile_overlap`` without a tile (neither given nor in the config); bad
            tile options (:func:`irdet.models.tiling.check_tile_options`).
    """
    ev = dict(module.config.get("eval") or {})
    if tile is not None:
        ev["tile"] = [int(tile[0]), int(tile[1])]
    if tile_overlap is not None:
        if ev.get("tile") is None:
            raise ConfigError("--tile-overlap needs --tile H W (or eval.tile in the checkpoint's config)")
        ev["tile_overlap"] = int(tile_overlap)
    opts = tile_options({"eval": ev})
    if not opts:
        return
    task = task_of(module.config)
    if not task.tiling:
        raise ConfigError(f"tiled inference (--tile / eval.tile) is for single-frame checkpoints, not task: {task.name} ones")
    check_tile_options(module.model, **opts)
    module.config = {**module.config, "eval": ev}


def inference_precision(module, precision: str | None = None) -> str:
    """The precision to run ``module`` in: ``precision``; else, for a packaged weights file that
    stores metrics, the precision those metrics were scored in (their ``eval_precision``;
    ``32-true`` for files packaged before irdet recorded it, which were scored in fp32), so the
    file reproduces its own metrics; else its config's ``train.precision`` (``32-true`` when
    absent). ``32-true`` for ONNX Runtime modules, whose precision was fixed at export.

    Raises:
        ConfigError: a precision other than ``32-true`` asked of an ONNX Runtime module.
    """
    if getattr(module, "backend", "pytorch") != "pytorch":
        if precision not in (None, "32", "32-true"):
            raise ConfigError(f"--precision {precision}: an ONNX model runs in the precision it was exported in "
                              f"(float32, or float16 with irdet export --half)")
        return "32-true"
    if precision:
        return precision
    packaged = getattr(module, "packaged_metrics", None)
    if packaged:
        return str(packaged.get("eval_precision") or "32-true")
    return str(module.config.get("train", {}).get("precision") or "32-true")


def inference_device(device: str, backend: str = "pytorch") -> torch.device:
    """The torch device inference runs on: the CPU for ONNX Runtime modules (the session picks
    its own provider) and for ``"cpu"``; ``"auto"``: CUDA when available, else the CPU;
    ``"gpu"`` / ``"cuda"``: CUDA; any other torch device name as given.

    Raises:
        ConfigError: ``"gpu"`` / ``"cuda"`` without a CUDA device.
    """
    name = str(device).lower()
    if backend != "pytorch" or name == "cpu":
        return torch.device("cpu")
    if name in ("auto", "gpu", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if name == "auto":
            return torch.device("cpu")
        raise ConfigError(f"device {device!r}: no CUDA device available")
    return torch.device(name)


class Inference:
    """A loaded module ready for inference: on :func:`inference_device`, in eval mode, with the
    precision of :func:`inference_precision` resolved for that device
    (:func:`irdet.engine.precision.resolve_precision`).

    Attributes:
        module: the :class:`~irdet.engine.module.DetectorModule` (or its ONNX Runtime
            counterpart, :class:`irdet.deploy.runtime.OnnxModule`).
        config: the model's resolved config. backend: ``"pytorch"`` or ``"onnxruntime"``.
        device: the torch device. precision: the Lightning precision string that runs.

    Raises:
        ConfigError: as :func:`inference_device` and :func:`inference_precision`.
    """

    def __init__(self, module, device: str = "auto", precision: str | None = None):
        self.module = module
        self.config = module.config
        self.backend = getattr(module, "backend", "pytorch")
        self.device = inference_device(device, self.backend)
        self.precision = resolve_precision(inference_precision(module, precision), self.device.type)
        module.to(self.device).eval()

    def amp(self):
        """The autocast context of :attr:`precision` on :attr:`device` (decoding stays fp32)."""
        return autocast_context(self.precision, self.device.type)


def predict(module: DetectorModule, dataset, batch_size: int = 2, accelerator: str = "auto", num_workers: int = 2,
            collate_fn=collate, precision: str = "32-true") -> list[dict]:
    """Run ``module`` over ``dataset`` (test transforms) with a Lightning progress bar.

    Returns the prediction items of every batch, in order (see :class:`DetectorModule`; skipped
    markers of :class:`~irdet.data.datasets.inputs.ImageFolder` included). ``collate_fn``: the
    batcher (the task's ``collate``). ``precision``: a Lightning precision string, run as
    :func:`irdet.engine.precision.resolve_precision` decides for ``accelerator`` (decoding
    stays fp32).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_fn)
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        precision=resolve_precision(precision, accelerator), callbacks=[TQDMProgressBar(refresh_rate=5)])
    batches = trainer.predict(module, loader)
    return [item for batch in batches for item in batch]
