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
:class:`Result` per image; ``irdet detect`` calls it for single-frame models. Sequence
(multi-frame) models take a video file, a frame folder or a list of frames and return one
result per frame, in order (:meth:`Model.stream` yields them as they come, e.g. for a
tracker).

Coordinates: boxes are (x1, y1, x2, y2) pixel-edge coordinates of the original image (a
target covering columns 10..12 has x1 = 10, x2 = 13); scores are class probability ×
centerness in [0, 1]. Bad inputs raise :class:`irdet.errors.DataError` naming the file (or
``<input i>`` for the i-th in-memory input), as the CLI prints them. Source: irdet extension.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from irdet.errors import ConfigError, DataError, IrdetError

__all__ = ["load", "Model", "Result", "Results", "ERRORS"]

#: ``errors`` choices of :meth:`Model.predict`
ERRORS = ("raise", "skip")


@dataclass
class Result:
    """Detections on one image (or one frame of a sequence).

    Attributes:
        image_id: the image's id (file path relative to the inputs' common parent without
            suffix, as ``irdet detect``; ``input_<i>`` for the i-th in-memory input;
            ``<sequence>/<frame>`` for frames).
        boxes: (K, 4) float32 XYXY pixel-edge boxes in original-image pixels.
        scores: (K,) float32 in [0, 1], descending.
        orig_size: (H, W) of the original image.
        path: the image file (None for in-memory images and video frames).
        sky_prob: BAFE-Net: (h, w) float32 sky probability at the finest stride, else None.
        frame_index: position of the frame in its sequence (sequence models), else None.
    """

    image_id: str
    boxes: np.ndarray
    scores: np.ndarray
    orig_size: tuple[int, int]
    path: str | None = None
    sky_prob: np.ndarray | None = None
    frame_index: int | None = None
    source: object = field(default=None, repr=False)  #: the in-memory input or decoded frame, for :meth:`image`

    def __len__(self) -> int:
        return len(self.scores)

    def image(self) -> np.ndarray:
        """The original image, (H, W, 3) float32 in [0, 255] (re-read from ``path``).

        Raises:
            DataError: the file cannot be read any more. IrdetError: a video frame not kept
                (results of :meth:`Model.predict` on a video; :meth:`Model.stream` keeps them).
        """
        from irdet.data.inputs import image_from
        from irdet.data.io import read_image

        if self.source is not None:
            return image_from(self.source, f"<{self.image_id}>")
        if self.path is not None:
            return read_image(self.path)
        raise IrdetError(f"{self.image_id}: the frame is not kept in this result (use Model.stream, or "
                         f"save(path, image=frame))")

    def save(self, path, score_thr: float | None = None, image: np.ndarray | None = None) -> Path:
        """Write an overlay PNG (boxes drawn 1 px outside; sky tinted for BAFE-Net), atomically.

        Args:
            score_thr: draw only boxes with score ≥ it (None: all of this result's boxes).
            image: the original image, when this result does not keep it.

        Returns:
            ``path`` as a Path.
        """
        from irdet.data.io import atomic_save_image
        from irdet.visualize import overlay

        keep = self.scores >= score_thr if score_thr is not None else slice(None)
        path = Path(path)
        atomic_save_image(path, overlay(self.image() if image is None else image, self.boxes[keep], self.sky_prob))
        return path

    def to_dict(self) -> dict:
        """``{"image_id", "path", "orig_size": [H, W], "boxes": [[x1, y1, x2, y2], ...], "scores": [...]}``
        (plus ``frame_index`` for frames), plain Python numbers."""
        d = {"image_id": self.image_id, "path": self.path, "orig_size": [int(v) for v in self.orig_size],
             "boxes": np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4).tolist(),
             "scores": np.asarray(self.scores, dtype=np.float64).tolist()}
        if self.frame_index is not None:
            d["frame_index"] = int(self.frame_index)
        return d

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


class Results(list):
    """A list of :class:`Result`, plus ``skipped``: ``[{"path", "reason"}]`` of inputs that gave
    no result (non-image files inside folders; unreadable images with ``errors="skip"``)."""

    def __init__(self, items=(), skipped=None):
        super().__init__(items)
        self.skipped: list[dict] = list(skipped or [])

    def to_results(self) -> list[dict]:
        """All detections in irdet's results-file format (``irdet evaluate --predictions``):
        ``[{"image_id", "bbox": [x, y, w, h], "score", "category_id": 1}, ...]``."""
        from irdet.metrics import dets_to_results

        return dets_to_results({r.image_id: (r.boxes, r.scores) for r in self})


def _device(device: str, backend: str):
    import torch

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


class Model:
    """A loaded detector (see :func:`load`).

    Attributes:
        module: the Lightning module (``DetectorModule`` / ``SequenceModule``, or their ONNX
            Runtime counterparts of :mod:`irdet.deploy.runtime`).
        config: the model's resolved config. task: ``"detect"`` or ``"sequence"``.
        backend: ``"pytorch"`` or ``"onnxruntime"``. device: the torch device it runs on.
        precision: the Lightning precision string that runs (resolved for the device).
    """

    def __init__(self, module, device: str = "auto", precision: str | None = None):
        from irdet.config import config_task
        from irdet.engine.precision import resolve_precision
        from irdet.engine.runner import inference_precision

        self.module = module
        self.config = module.config
        self.task = config_task(self.config)
        self.backend = getattr(module, "backend", "pytorch")
        self.device = _device(device, self.backend)
        self.precision = resolve_precision(inference_precision(module, precision), self.device.type)
        module.to(self.device).eval()

    def __repr__(self) -> str:
        return f"irdet.Model({self.config.get('name', '?')!r}, task={self.task}, backend={self.backend})"

    def _amp(self):
        from irdet.engine.precision import autocast_context

        return autocast_context(self.precision, self.device.type)

    def predict(self, inputs, score_thr: float | None = None, batch_size: int = 1, num_workers: int = 0,
                errors: str = "raise", progress: bool = False) -> Results:
        """Detect targets.

        Args:
            inputs: single-frame models: an image path, a folder (all images inside, sorted,
                recursively), a numpy array / torch tensor / PIL image
                (:func:`irdet.data.inputs.image_from`), or a list mixing them (results in
                that order). Sequence models: a video file, a frame folder (frames sorted
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
        if self.task == "sequence":
            video = not isinstance(inputs, (list, tuple))
            results = Results()
            for r in self.stream(inputs, score_thr, progress):
                if video and r.path is None:  # a decoded video frame: not kept in a list of results
                    r.source = None
                results.append(r)
            return results
        return self._predict_images(inputs, score_thr, batch_size, num_workers, errors, progress)

    __call__ = predict

    def open_inputs(self, inputs):
        """The :class:`~irdet.data.inputs.InputImages` of ``inputs`` with this model's test
        transforms (single-frame models); checks that every path exists.

        Raises:
            DataError: as :meth:`predict`.
        """
        from irdet.data.inputs import InputImages
        from irdet.engine.datamodule import test_transforms_from_cfg

        if isinstance(inputs, InputImages):
            return inputs
        return InputImages(inputs, transforms=test_transforms_from_cfg(self.config))

    def _predict_images(self, inputs, score_thr, batch_size, num_workers, errors, progress) -> Results:
        import torch
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        from irdet.data.densesirst import ImageFolder
        from irdet.data.inputs import is_path

        dataset = self.open_inputs(inputs)
        results = Results(skipped=[{"path": str(p), "reason": r} for p, r in dataset.skipped])
        loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers),
                            collate_fn=ImageFolder.collate)
        amp = self._amp()
        with tqdm(total=len(dataset), desc="detect", unit="img", disable=not progress) as bar:
            for index, batch in enumerate(loader):
                if batch["image_id"]:
                    batch["images"] = batch["images"].to(self.device)
                with torch.no_grad(), amp:
                    items = self.module.predict_step(batch, index)
                for item in items:
                    if "skipped" in item:
                        if errors == "raise":
                            raise DataError(item["path"], item["skipped"])
                        results.skipped.append({"path": item["path"], "reason": item["skipped"]})
                        continue
                    source = dataset.sources.get(item["image_id"])
                    results.append(_result(item, score_thr, source=None if is_path(source) else source))
                bar.update(len(items))
        return results

    def stream(self, frames, score_thr: float | None = None, progress: bool = False) -> Iterator[Result]:
        """Sequence models: per-frame results of one sequence, yielded as the frames are read.

        Each frame is the current frame of a clip of its T − 1 predecessors (the first frame
        repeated at the start, as in training), each frame going through the network once
        (PyTorch: its stride-8 map is cached; ONNX Runtime: the frames are, and each clip runs
        the graph), exactly as ``irdet detect`` on a video. Every result keeps its frame
        (``Result.image()``, ``Result.save``).

        Args:
            frames: a video file, a frame folder or image (:class:`irdet.engine.sequence.FrameSource`),
                or a list of frames (paths and/or in-memory images; ids: file stems,
                ``frame_<i>`` for in-memory ones).

        Raises:
            ConfigError: a single-frame model. DataError: an unreadable video / frame.
        """
        import torch
        from tqdm import tqdm

        from irdet.engine.sequence import _prepare

        if self.task != "sequence":
            raise ConfigError("stream() is for sequence (multi-frame) models; use predict() for images")
        cfg = self.config
        model = self.module.model
        t = model.num_frames
        history: deque = deque(maxlen=t)
        source, total = _frame_source(frames)
        amp = self._amp()
        for index, (frame_id, image, path) in enumerate(tqdm(source, total=total, desc="detect", unit="frame",
                                                              disable=not progress)):
            x, img_size = _prepare(image, cfg["data"]["img_size"], int(cfg["data"]["pad_divisor"]))
            with torch.no_grad(), amp:
                feat, _ = model.frame_features(x[None].to(self.device))
                history.append(feat[0])
                clip = [history[0]] * (t - len(history)) + list(history)
                det = model.predict_features(torch.stack(clip)[None], [img_size], [image.shape[:2]])[0]
            item = {"image_id": frame_id, "boxes": det["boxes"].float().cpu().numpy(),
                    "scores": det["scores"].float().cpu().numpy(), "orig_size": tuple(image.shape[:2]), "path": path}
            yield _result(item, score_thr, source=image if path is None else None, frame_index=index)

    def export(self, out, format: str = "onnx", opset: int | None = None, dynamic: bool | None = None,
               half: bool = False) -> Path:
        """Export the network (``format="onnx"``, :func:`irdet.deploy.export.export_onnx`); returns ``out``.

        Raises:
            ConfigError: another format, or an ONNX Runtime model. IrdetError: the export
                extra is missing, or the exporter failed.
        """
        from irdet.deploy.export import export_onnx

        if format != "onnx":
            raise ConfigError(f"export format must be 'onnx', got {format!r}")
        return export_onnx(self.module, out, opset, dynamic, half, source=str(getattr(self, "source", "") or ""))


def _result(item: dict, score_thr, source=None, frame_index=None) -> Result:
    boxes, scores = item["boxes"], item["scores"]
    if score_thr is not None:
        keep = scores >= score_thr
        boxes, scores = boxes[keep], scores[keep]
    return Result(item["image_id"], boxes, scores, tuple(int(v) for v in item["orig_size"]), item.get("path"),
                  item.get("sky_prob"), frame_index, source)


def _frame_source(frames):
    """``(iterable of (frame_id, (H, W, 3) float32 image, path or None), frame count or None)``."""
    from irdet.data.inputs import image_from, is_path
    from irdet.data.io import read_image
    from irdet.engine.sequence import FrameSource

    if not isinstance(frames, (list, tuple)):
        src = FrameSource(frames)
        files = src.files
        if files is not None:
            return ((fid, img, str(f)) for (fid, img), f in zip(src, files)), len(files)
        return ((fid, img, None) for fid, img in src), src.num_frames
    if not frames:
        raise DataError("<frames>", "no frames given")
    ids: dict[str, int] = {}

    def frame_id(i, x):
        base = Path(x).stem if is_path(x) else f"frame_{i}"
        ids[base] = ids.get(base, 0) + 1
        return base if ids[base] == 1 else f"{base}~{ids[base]}"

    def gen():
        for i, x in enumerate(frames):
            if is_path(x):
                yield frame_id(i, x), read_image(x), str(x)
            else:
                yield frame_id(i, x), image_from(x, f"<input {i}>"), None

    return gen(), len(frames)


def load(model=None, backend: str | None = None, device: str = "auto", precision: str | None = None,
         tile=None, tile_overlap: int | None = None) -> Model:
    """Load a detector for inference.

    Args:
        model: ``"default"`` or None (the shipped default model), or a path: a Lightning
            checkpoint (``.ckpt``), a packaged weights file (``.pt``, ``irdet package``), or an
            ONNX file of ``irdet export`` (``.onnx``).
        backend: None (by the file: ONNX Runtime for ``.onnx``, else PyTorch), ``"pytorch"``,
            or ``"onnxruntime"`` (a PyTorch model is then exported in memory, dynamic H/W).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` (PyTorch backend).
        precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"`` (None: the model's
            ``train.precision``), resolved for the device (bf16 falls back to fp32 on CPUs
            without bf16 instructions, saying so on stderr); ONNX models run as exported.
        tile, tile_overlap: tiled inference, (h, w) pixels of the network input
            (:mod:`irdet.models.tiling`; single-frame models, both backends).

    Raises:
        DataError: missing or unreadable model file; no shipped default model yet.
        ConfigError: bad backend / precision / tile options. IrdetError: ``onnxruntime``
            asked for without the ``export`` extra installed.
    """
    from irdet.engine.runner import load_model, set_tiling

    path = None if model in (None, "default") else model
    module = load_model(path, backend)
    set_tiling(module, tile, tile_overlap)
    m = Model(module, device, precision)
    m.source = Path(path).name if path is not None else "default"
    return m
