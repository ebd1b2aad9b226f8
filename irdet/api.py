"""Python API: load a detector, run it on images, frames or videos, use the results.

```python
import irdet
model = irdet.load("default")          # or a .ckpt / .pt / .onnx path
results = model.predict(["a.png", array, pil_image], score_thr=0.3)
results[0].boxes, results[0].scores    # (K, 4) XYXY pixels, (K,)
results[0].save("overlay.png"); results[0].to_json()
```

:func:`load` takes what ``irdet detect`` takes (the shipped default model, a Lightning
checkpoint, a packaged ``.pt`` weights file, an ``irdet export`` ``.onnx`` file) and a backend
(``pytorch``, or ``onnxruntime``: ``.onnx`` files, or a PyTorch model exported in memory).
:meth:`Model.predict` runs the model's own test pipeline (resize / native resolution, padding,
the shared decoding :func:`irdet.models.postprocess.decode_detections`) and returns one
:class:`Result` per image; ``irdet detect`` runs the same prediction for single-frame models.
Sequence (multi-frame) models take a video file, a frame folder or a list of frames and return
one result per frame, in order (:meth:`Model.stream` yields them as they come, e.g. for a
tracker). What a model does with its inputs is its task's
(:meth:`irdet.engine.tasks.Task.predict`, :meth:`~irdet.engine.tasks.Task.stream`).

Coordinates: boxes are (x1, y1, x2, y2) pixel-edge coordinates of the original image (a
target covering columns 10..12 has x1 = 10, x2 = 13); scores are class probability ×
centerness in [0, 1]. Bad inputs raise :class:`irdet.errors.DataError` naming the file (or
``<input i>`` for the i-th in-memory input), as the CLI prints them. Source: irdet extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from irdet.deploy.export import export_onnx
from irdet.engine.detections import Result, Results
from irdet.engine.predict import Inference, load_model, set_tiling
from irdet.engine.tasks import task_of
from irdet.engine.zoo import default_model_for
from irdet.errors import ConfigError

__all__ = ["load", "Model", "Result", "Results", "ERRORS"]

#: ``errors`` choices of :meth:`Model.predict`
ERRORS = ("raise", "skip")


class Model(Inference):
    """A loaded detector (see :func:`load`): an :class:`~irdet.engine.predict.Inference`.

    Attributes:
        module: the Lightning module (:class:`~irdet.engine.module.DetectorModule`, or its ONNX
            Runtime counterpart :class:`irdet.deploy.runtime.OnnxModule`).
        config: the model's resolved config. task: ``"detect"`` or ``"sequence"``.
        backend: ``"pytorch"`` or ``"onnxruntime"``. device: the torch device it runs on.
        precision: the Lightning precision string that runs (resolved for the device).

    Raises:
        ConfigError: ``device`` ``"cuda"`` / ``"gpu"`` without CUDA; a precision an ONNX
            model cannot run in.
    """

    def __init__(self, module, device: str = "auto", precision: str | None = None):
        super().__init__(module, device, precision)
        self._task = task_of(self.config)
        self.task = self._task.name

    def __repr__(self) -> str:
        return f"irdet.Model({self.config.get('name', '?')!r}, task={self.task}, backend={self.backend})"

    def predict(self, inputs, score_thr: float | None = None, batch_size: int = 1, num_workers: int = 0,
                errors: str = "raise", progress: bool = False) -> Results:
        """Detect targets.

        Args:
            inputs: single-frame models: an image path, a folder (all images inside, sorted,
                recursively), a numpy array / torch tensor / PIL image
                (:func:`irdet.data.datasets.inputs.image_from`), or a list mixing them (results
                in that order). Sequence models: a video file, a frame folder (frames sorted
                numerically) or a list of frames (paths or in-memory images), one sequence.
            score_thr: keep boxes with score ≥ it (None: every box the model keeps, i.e. above
                its ``model.head.test.score_thr``; a lower value adds none).
            batch_size, num_workers: images per network call and DataLoader worker processes
                (single-frame models).
            errors: ``"raise"``: an unreadable image raises; ``"skip"``: it is left out and
                listed in ``Results.skipped`` (what ``irdet detect`` does). Frames of a
                sequence are never skipped.
            progress: show a progress bar.

        Returns:
            :class:`Results`, one :class:`Result` per image or frame.

        Raises:
            DataError: a missing path, no images at all, an unreadable image (``errors="raise"``)
                or frame, an in-memory input that is not an image (naming the file or
                ``<input i>``). ConfigError: bad ``errors``.
        """
        if errors not in ERRORS:
            raise ConfigError(f"errors must be one of {list(ERRORS)}, got {errors!r}")
        return self._task.predict(self, inputs, score_thr, batch_size, num_workers, errors, progress)

    __call__ = predict

    def open_inputs(self, inputs):
        """The :class:`~irdet.data.datasets.inputs.InputImages` of ``inputs`` with this model's test
        transforms (single-frame models); checks that every path exists.

        Raises:
            DataError: as :meth:`predict`.
        """
        return self._task.open_inputs(self.config, inputs)

    def stream(self, frames, score_thr: float | None = None, progress: bool = False) -> Iterator[Result]:
        """Sequence models: per-frame results of one sequence, yielded as the frames are read.

        Each frame is the current frame of a clip of its T − 1 predecessors (the first frame
        repeated at the start, as in training), each frame going through the network once
        (PyTorch: its stride-8 map is cached; ONNX Runtime: the frames are, and each clip runs
        the graph), exactly as ``irdet detect`` on a video
        (:func:`irdet.engine.tasks.sequence.clip_detections`). Every result keeps its frame
        (``Result.image()``, ``Result.save``).

        Args:
            frames: a video file, a frame folder or image (:class:`irdet.data.video.FrameSource`),
                or a list of frames (paths and/or in-memory images; ids: file stems,
                ``frame_<i>`` for in-memory ones).

        Raises:
            ConfigError: a single-frame model. DataError: an unreadable video / frame.
        """
        return self._task.stream(self, frames, score_thr, progress)

    def export(self, out, format: str = "onnx", opset: int | None = None, dynamic: bool | None = None,
               half: bool = False) -> Path:
        """Export the network (``format="onnx"``, :func:`irdet.deploy.export.export_onnx`); returns ``out``.

        Raises:
            ConfigError: another format, or an ONNX Runtime model. IrdetError: the export
                extra is missing, or the exporter failed.
        """
        if format != "onnx":
            raise ConfigError(f"export format must be 'onnx', got {format!r}")
        return export_onnx(self.module, out, opset, dynamic, half, source=str(getattr(self, "source", "") or ""))


def load(model=None, backend: str | None = None, device: str = "auto", precision: str | None = None,
         tile=None, tile_overlap: int | None = None) -> Model:
    """Load a detector for inference.

    Args:
        model: ``"default"`` or None (the shipped default single-frame model), ``"video"`` (the
            shipped video model, :data:`irdet.engine.zoo.DEFAULT_VIDEO_MODEL`), or a path: a Lightning
            checkpoint (``.ckpt``), a packaged weights file (``.pt``, ``irdet package``), or an
            ONNX file of ``irdet export`` (``.onnx``).
        backend: None (by the file: ONNX Runtime for ``.onnx``, else PyTorch), ``"pytorch"``,
            or ``"onnxruntime"`` (a PyTorch model is then exported in memory, dynamic H/W).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` (PyTorch backend).
        precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"`` (None: the model's
            ``train.precision``; for a packaged weights file, the precision its metrics were
            scored in, :func:`irdet.engine.predict.inference_precision`), resolved for the
            device (bf16 falls back to fp32 on CPUs without bf16 instructions, saying so on
            stderr); ONNX models run as exported.
        tile, tile_overlap: tiled inference, (h, w) pixels of the network input
            (:mod:`irdet.models.tiling`; single-frame models, both backends).

    Raises:
        DataError: missing or unreadable model file; no shipped default (or video) model yet.
        ConfigError: bad backend / precision / tile options. IrdetError: ``onnxruntime``
            asked for without the ``export`` extra installed.
    """
    if model in (None, "default"):
        path = None
    elif model == "video":
        path = default_model_for([], frames=True)
    else:
        path = model
    module = load_model(path, backend)
    set_tiling(module, tile, tile_overlap)
    m = Model(module, device, precision)
    m.source = Path(path).name if path is not None else "default"
    return m
