"""ONNX Runtime inference of exported irdet models, behind the PyTorch models' interface.

:func:`load_onnx` turns an ``irdet export`` file (:mod:`irdet.deploy.export`) into a module
that the PyTorch code paths use unchanged: :class:`OnnxModule` is a
:class:`~irdet.engine.module.DetectorModule` (of the file's task) whose ``model`` (the task's
entry of :data:`ONNX_MODELS`) runs the network in an ``onnxruntime.InferenceSession`` and
returns the raw head outputs as torch tensors; ``predict`` is the very method of the PyTorch model
(:meth:`irdet.models.detector.Detector.predict`, tiling included;
:meth:`irdet.models.sequence_detector.SequenceDetector.predict`), and the head's ``predict`` is
:func:`irdet.models.postprocess.decode_detections` with the strides and test settings stored
in the file. So ``irdet evaluate``, ``irdet detect`` (also ``--tile``, and video for sequence
models) and :func:`irdet.load` run ONNX models through the same data pipeline, decoding,
NMS and output files as checkpoints.

Sequence models: the graph takes whole clips (N, T, 3, H, W), so the per-frame feature cache
of ``irdet detect`` caches frames instead (:meth:`OnnxSequenceDetector.frame_features`) and
each clip runs the backbone on its T frames (T times the per-frame backbone cost of the
PyTorch path).

Session: the CPU execution provider (CUDA first when the installed onnxruntime has it),
``intra_op_num_threads`` = ``threads`` (default ``torch.get_num_threads()``), graph
optimisation level ``optimization`` (``all`` by default; ``disabled``, ``basic``,
``extended``). Source: irdet extension.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import torch
from torch import nn

from irdet.deploy import require
from irdet.deploy.export import FORMAT, build_onnx
from irdet.engine.module import DetectorModule
from irdet.engine.tasks import task_of
from irdet.errors import ConfigError, DataError
from irdet.models import Detector, SequenceDetector, neck_inputs
from irdet.models.postprocess import decode_detections

__all__ = ["OPTIMIZATIONS", "OnnxNetwork", "OnnxHead", "OnnxDetector", "OnnxSequenceDetector", "ONNX_MODELS",
           "OnnxModule", "load_onnx", "onnx_module"]

#: ``optimization`` values → ``onnxruntime.GraphOptimizationLevel`` names
OPTIMIZATIONS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                 "all": "ORT_ENABLE_ALL"}


class OnnxNetwork:
    """An ``onnxruntime.InferenceSession`` of an irdet ONNX model and its parsed metadata.

    Args:
        model: a ``.onnx`` path, or the serialized model (bytes).
        threads: intra-op threads (None: ``torch.get_num_threads()``).
        optimization: a key of :data:`OPTIMIZATIONS`.
        name: what error messages call the model (default: the path, or ``"<in-memory ONNX model>"``).

    ``meta`` holds the metadata values (JSON-decoded, see :mod:`irdet.deploy.export`).

    Raises:
        IrdetError: onnxruntime is not installed. ConfigError: unknown ``optimization``.
        DataError: missing or unreadable file, or an ONNX model without irdet metadata.
    """

    def __init__(self, model, threads: int | None = None, optimization: str = "all", name: str | None = None):
        (ort,) = require("onnxruntime")
        if optimization not in OPTIMIZATIONS:
            raise ConfigError(f"ONNX Runtime optimization must be one of {list(OPTIMIZATIONS)}, got {optimization!r}")
        if isinstance(model, (bytes, bytearray)):
            self.name = name or "<in-memory ONNX model>"
            source = bytes(model)
        else:
            self.name = name or str(model)
            if not Path(model).is_file():
                raise DataError(model, "ONNX model not found")
            source = str(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATIONS[optimization])
        opts.log_severity_level = 3  # errors only
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(source, sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - not an ONNX file, or one this runtime cannot run
            text = " ".join(f"{exc.__class__.__name__}: {exc}".split())
            raise DataError(self.name, f"not a readable ONNX model ({text[:300]})") from None
        raw = self.session.get_modelmeta().custom_metadata_map
        try:
            self.meta = {k: json.loads(v) for k, v in raw.items()}
        except ValueError:
            self.meta = {}
        if self.meta.get("irdet_format") != FORMAT:
            raise DataError(self.name, f"not an irdet ONNX model (no irdet_format {FORMAT!r} metadata; write one "
                                       f"with irdet export)")
        self.input_name = self.meta["input_name"]
        self.output_names = list(self.meta["outputs"])
        self.keys = [name.rsplit("_", 1)[0] for name in self.output_names]

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Refuse an input shape the graph cannot take.

        Raises:
            ConfigError: wrong rank / channels / T, H or W not a multiple of ``hw_multiple``
                (dynamic H/W), or not the fixed ``input_size``.
        """
        m = self.meta
        rank = len(m["input_layout"].split(","))  # N,3,H,W or N,T,3,H,W
        ok = len(shape) == rank and shape[-3] == 3 and (rank == 4 or shape[1] == m["num_frames"])
        if ok and m["dynamic_hw"]:
            ok = shape[-2] % m["hw_multiple"] == 0 and shape[-1] % m["hw_multiple"] == 0
        elif ok:
            ok = list(shape[-2:]) == list(m["input_size"])
        if not ok:
            size = (f"H and W multiples of {m['hw_multiple']}" if m["dynamic_hw"]
                    else f"H x W = {m['input_size'][0]} x {m['input_size'][1]} (export with --dynamic for other sizes)")
            raise ConfigError(f"{self.name}: input of shape {list(shape)} does not fit the model "
                              f"({m['input_layout']}{', T = ' + str(m['num_frames']) if rank == 5 else ''}, {size})")

    def run(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The raw head outputs for ``x`` (float, [0, 255], the model's input layout): a dict of
        per-level lists of float32 tensors on ``x``'s device, as the PyTorch head returns them.

        Raises:
            ConfigError: see :meth:`check_input`.
        """
        self.check_input(tuple(x.shape))
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        outs = self.session.run(self.output_names, {self.input_name: arr})
        result: dict[str, list[torch.Tensor]] = {}
        for key, value in zip(self.keys, outs):
            result.setdefault(key, []).append(torch.from_numpy(value).to(x.device))
        return result


class OnnxHead:
    """The decoding half of a head: ``strides``, ``num_classes``, ``test_cfg`` from the file's
    metadata; :meth:`predict` is :func:`~irdet.models.postprocess.decode_detections`."""

    def __init__(self, meta: dict):
        self.strides = [int(s) for s in meta["strides"]]
        self.num_classes = int(meta["num_classes"])
        self.test_cfg = {k: meta[k] for k in ("score_thr", "nms_pre", "nms_iou", "max_per_img")}

    def predict(self, out: dict, img_sizes, orig_sizes=None) -> list[dict]:
        """As :meth:`irdet.models.heads.fcos.FCOSHead.predict`."""
        return decode_detections(out, self.strides, self.test_cfg, img_sizes, orig_sizes)


class OnnxDetector(nn.Module):
    """A single-frame ONNX model with :class:`~irdet.models.detector.Detector`'s interface:
    ``forward(images (N, 3, H, W) in [0, 255]) -> (head_out, {})``, ``predict`` (the Detector's
    own method: tiling, then ``head.predict``), ``head`` (:class:`OnnxHead`), and
    ``backbone.out_levels`` (the ``C_k`` the network reads, for the tile alignment)."""

    def __init__(self, network: OnnxNetwork):
        super().__init__()
        self.network = network
        self.head = OnnxHead(network.meta)
        self.backbone = SimpleNamespace(out_levels=tuple(neck_inputs(network.meta["config"]["model"]["neck"])))

    def forward(self, images: torch.Tensor) -> tuple[dict, dict]:
        return self.network.run(images), {}

    predict = Detector.predict


class OnnxSequenceDetector(nn.Module):
    """A multi-frame ONNX model with :class:`~irdet.models.sequence_detector.SequenceDetector`'s interface.

    ``forward(video (N, T, 3, H, W))``; ``frame_features`` returns the frames themselves (the
    graph runs whole clips), so ``head_from_features`` of a (N, T, 3, H, W) stack of cached
    frames runs the clip; ``predict`` / ``predict_features`` are the SequenceDetector's own.
    """

    uses_history = True

    def __init__(self, network: OnnxNetwork):
        super().__init__()
        self.network = network
        self.num_frames = int(network.meta["num_frames"])
        self.head = OnnxHead(network.meta)
        self.backbone = SimpleNamespace(out_levels=tuple(neck_inputs(network.meta["config"]["model"]["neck"])))

    def forward(self, video: torch.Tensor) -> tuple[dict, dict]:
        return self.network.run(video), {}

    def frame_features(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(M, 3, H, W) frames → themselves (what a clip of the graph is made of), no losses."""
        return images, {}

    def head_from_features(self, frames: torch.Tensor) -> dict:
        """Raw head outputs of a (N, T, 3, H, W) clip batch."""
        return self.network.run(frames)

    predict = SequenceDetector.predict
    predict_features = SequenceDetector.predict_features


#: ``task`` of an exported model → the ONNX model class with its PyTorch model's interface
ONNX_MODELS: dict[str, type[nn.Module]] = {"detect": OnnxDetector, "sequence": OnnxSequenceDetector}


class OnnxModule(DetectorModule):
    """:class:`~irdet.engine.module.DetectorModule` (prediction only) over an ONNX model
    (:data:`ONNX_MODELS`): the config and model come from the file, nothing is built."""

    backend = "onnxruntime"

    def __init__(self, config: dict, model: nn.Module, path: str | None = None):
        L.LightningModule.__init__(self)
        self.config = config
        self.task = task_of(config)
        self.model = model
        self.onnx_path = path
        self.packaged_metrics = dict(model.network.meta.get("metrics") or {})
        self._val_preds: dict = {}
        self._val_ground_truth = None


def load_onnx(model, threads: int | None = None, optimization: str = "all", name: str | None = None):
    """Load an ``irdet export`` file (or its bytes) for ONNX Runtime inference.

    Returns:
        an :class:`OnnxModule` over the task's :data:`ONNX_MODELS` entry, eval mode,
        ``backend == "onnxruntime"``, ``config`` = the exported model's config.

    Raises:
        IrdetError / DataError / ConfigError: see :class:`OnnxNetwork`.
    """
    network = OnnxNetwork(model, threads, optimization, name)
    cfg = network.meta["config"]
    return OnnxModule(cfg, ONNX_MODELS[network.meta["task"]](network), network.name).eval()


def onnx_module(module, threads: int | None = None, optimization: str = "all", half: bool = False,
                optimize: bool = True):
    """A PyTorch module exported in memory (dynamic H/W, :func:`irdet.deploy.export.build_onnx`)
    and loaded with :func:`load_onnx`: ``--backend onnxruntime`` on a checkpoint or weights file."""
    proto = build_onnx(module, dynamic=True, half=half, optimize=optimize)
    return load_onnx(proto.SerializeToString(), threads, optimization,
                     name=f"<{module.config.get('name', 'model')} exported to ONNX>")
