"""ONNX export of an irdet detector: the network's raw dense outputs plus what decoding needs.

The graph is the network only: input normalisation, backbone, neck, head towers and the head's
box-distance transform (``FCOSHead.decode_distances``). Its outputs are the per-level raw head
outputs, named ``<key>_<level>`` (level 0 = finest stride):

``cls_scores_l``   (N, C, H_l, W_l) class logits
``bbox_preds_l``   (N, 4, H_l, W_l) float32 (l, t, r, b) distances in input pixels
``centernesses_l`` (N, 1, H_l, W_l) centerness logits
``seg_logits_l``   (N, 1, H_l, W_l) sky logits (BAFE-Net only)

Decoding and NMS are *not* in the graph: :func:`irdet.models.postprocess.decode_detections`,
the same function the PyTorch path calls, decodes these outputs (torchvision's NMS does not
export under the ``torch.export``-based exporter, and the box count is data dependent).

Input: ``images`` (N, 3, H, W) (``video`` (N, T, 3, H, W) for ``task: sequence`` models),
float32 RGB in [0, 255] after the config's test transforms (resize to ``data.img_size``, or
none for native-resolution models; bottom/right zero padding to ``data.pad_divisor``); the
normalisation ``(x − pixel_mean) / pixel_std`` is inside the graph. The batch is always
dynamic. H and W are dynamic (any multiple of the network stride, ``hw_multiple``) when
``dynamic`` is set, and always for native-resolution (``data.img_size: null``) and
``keep_ratio`` models, whose input size follows each image; otherwise they are fixed to the
padded ``data.img_size``.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based exporter, the
default since torch 2.9; it needs ``onnxscript``), dynamic sizes as ``torch.export.Dim``
multiples of the network stride, the exporter's ONNX optimisation pass on; opset: the
exporter's default unless given. ``half`` exports float16 weights and arithmetic with float32
input and outputs (casts inside the graph).

Metadata (``metadata_props``, every value JSON-encoded): ``irdet_format``
(:data:`FORMAT`), ``irdet_version``, ``task``, ``source``, ``input_name``, ``input_layout``,
``input_range``, ``pixel_mean``, ``pixel_std``, ``normalisation``, ``dynamic_hw``,
``hw_multiple``, ``input_size`` (fixed [H, W] or null), ``img_size``, ``keep_ratio``,
``pad_divisor`` (the resize policy), ``strides``, ``outputs``, ``output_keys``,
``score_thr``, ``nms_pre``, ``nms_iou``, ``max_per_img``, ``num_classes``, ``num_frames``
(sequence models), ``precision`` (``float32`` / ``float16``), ``opset``, ``metrics`` (what a
packaged weights file scored) and ``config`` (the full resolved config).

Source: irdet extension.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from torch import nn

from irdet.deploy import require
from irdet.engine.tasks import task_of
from irdet.engine.zoo import _version
from irdet.errors import ConfigError, DataError, IrdetError
from irdet.models.postprocess import OUTPUT_KEYS
from irdet.models.tiling import network_stride

__all__ = ["FORMAT", "build_onnx", "export_onnx", "export_metadata"]

FORMAT = "irdet-onnx/1"


class _RawOutputs(nn.Module):
    """``model``'s head outputs as a flat tuple in ``keys`` order, each key's levels finest first;
    with ``half``, the float32 input is cast to float16 and the outputs back to float32."""

    def __init__(self, model: nn.Module, keys: list[str], half: bool):
        super().__init__()
        self.model, self.keys, self.half = model, keys, half

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, _ = self.model(x.half() if self.half else x)
        return tuple(t.float() for key in self.keys for t in out[key])


def _geometry(cfg: dict, model: nn.Module, dynamic: bool | None) -> tuple[bool, int, tuple[int, int]]:
    """``(dynamic, hw_multiple, example (H, W))`` of an export.

    Raises:
        ConfigError: a fixed-size export of a model whose input size varies, or a
            ``data.pad_divisor`` that is not a multiple of the network stride.
    """
    d = cfg["data"]
    align = network_stride(model)
    pad = int(d.get("pad_divisor") or align)
    varying = d.get("img_size") is None or bool(d.get("keep_ratio"))
    if dynamic is None:
        dynamic = varying
    if not dynamic and varying:
        raise ConfigError("this model's input size follows each image (data.img_size null or keep_ratio): it "
                          "exports with dynamic H/W only")
    if pad % align:
        raise ConfigError(f"data.pad_divisor = {pad} is not a multiple of the network stride {align}: padded inputs "
                          f"would not fit an ONNX graph whose H/W are multiples of {align}")
    if d.get("img_size") is not None and not d.get("keep_ratio"):
        size = tuple(int(math.ceil(int(s) / pad) * pad) for s in d["img_size"])
    else:
        size = (align * 8, align * 10)
    return dynamic, align, size


def export_metadata(module, model: nn.Module, keys: list[str], levels: int, dynamic: bool, align: int,
                    size: tuple[int, int], half: bool, source: str) -> dict:
    """The metadata of an export (see the module docstring), as Python values."""
    cfg = module.config
    d = cfg["data"]
    head = model.head
    task = task_of(cfg)
    meta = {
        "irdet_format": FORMAT,
        "irdet_version": _version(),
        "task": task.name,
        "source": source,
        "input_name": task.input_key,
        "input_layout": task.input_layout,
        "input_range": [0.0, 255.0],
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten().tolist()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten().tolist()],
        "normalisation": "inside the graph: (x - pixel_mean) / pixel_std on RGB float32 input in [0, 255]",
        "dynamic_hw": bool(dynamic),
        "hw_multiple": int(align),
        "input_size": None if dynamic else [int(size[0]), int(size[1])],
        "img_size": d.get("img_size"),
        "keep_ratio": bool(d.get("keep_ratio")),
        "pad_divisor": int(d.get("pad_divisor") or align),
        "strides": [int(s) for s in head.strides],
        "outputs": [f"{key}_{level}" for key in keys for level in range(levels)],
        "output_keys": keys,
        "num_classes": int(head.num_classes),
        **{k: head.test_cfg[k] for k in ("score_thr", "nms_pre", "nms_iou", "max_per_img")},
        "precision": "float16" if half else "float32",
        "metrics": dict(getattr(module, "packaged_metrics", None) or {}),
        "config": cfg,
    }
    if "T" in task.input_layout.split(","):
        meta["num_frames"] = int(model.num_frames)
    return meta


def build_onnx(module, opset: int | None = None, dynamic: bool | None = None, half: bool = False, source: str = "",
               optimize: bool = True):
    """Export ``module``'s network to an in-memory ONNX model (see the module docstring).

    Args:
        module: a loaded :class:`~irdet.engine.module.DetectorModule`
            (:func:`irdet.engine.predict.load_checkpoint`); it is not modified.
        opset: ONNX opset (None: the exporter's default).
        dynamic: dynamic H/W; None = only where the input size varies (native resolution,
            ``keep_ratio``). False for such a model is refused.
        half: float16 weights and arithmetic (float32 input and outputs).
        source: where the weights came from (stored as metadata).
        optimize: run the exporter's ONNX optimisation pass (constant folding, redundant-op
            removal; about a third of the export time). Leave it on: with torch 2.14 only the
            optimised graph of a bias-free ``Conv3d`` (the sequence models' fusion) runs in
            ONNX Runtime; off is for quicker exports of single-frame models in tests.

    Returns:
        an ``onnx.ModelProto`` with the metadata set, checked by ``onnx.checker``.

    Raises:
        IrdetError: the ``export`` extra is missing; the exporter failed (one line).
        ConfigError: see :func:`_geometry`; an ONNX module given.
    """
    if getattr(module, "backend", "pytorch") != "pytorch":
        raise ConfigError("an ONNX model cannot be exported again: export its checkpoint or weights file")
    onnx, _ = require("onnx", "onnxscript")
    model = module.model
    if half or any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()
    if half:
        model = model.half()
    model.eval()
    cfg = module.config
    dynamic, align, (h, w) = _geometry(cfg, model, dynamic)
    task = task_of(cfg)
    shape = task.example_shape(model, 2, h, w)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        probe, _ = model(example.half() if half else example)
    keys = [k for k in OUTPUT_KEYS if k in probe] + [k for k in probe if k not in OUTPUT_KEYS]
    levels = len(probe["cls_scores"])
    meta = export_metadata(module, model, keys, levels, dynamic, align, (h, w), half, source)
    dims = {0: torch.export.Dim("batch", min=1)}
    if dynamic:
        hw = (len(shape) - 2, len(shape) - 1)
        dims[hw[0]] = align * torch.export.Dim("h_blocks", min=1)
        dims[hw[1]] = align * torch.export.Dim("w_blocks", min=1)
    try:
        program = torch.onnx.export(_RawOutputs(model, keys, half).eval(), (example,), dynamo=True,
                                    dynamic_shapes={"x": dims}, input_names=[meta["input_name"]],
                                    output_names=meta["outputs"], opset_version=opset, verbose=False,
                                    optimize=optimize)
        proto = program.model_proto
    except Exception as exc:  # noqa: BLE001 - any exporter failure is one line for the CLI
        text = " ".join(f"{exc.__class__.__name__}: {exc}".split())
        raise IrdetError(f"{source or 'model'}: ONNX export failed ({text[:300]})") from None
    meta["opset"] = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in meta.items()})
    proto.doc_string = (f"irdet {meta['task']} model ({cfg.get('name', '')}): raw dense head outputs; decode with "
                        f"irdet.models.postprocess.decode_detections (metadata: strides, score_thr, ...)")
    onnx.checker.check_model(proto)
    return proto


def export_onnx(module, out, opset: int | None = None, dynamic: bool | None = None, half: bool = False,
                source: str = "", optimize: bool = True) -> Path:
    """:func:`build_onnx`, written atomically to ``out`` (a ``.onnx`` path; weights inline).

    Returns:
        ``out`` as a Path.

    Raises:
        DataError: ``out`` does not end in ``.onnx``. Otherwise as :func:`build_onnx`.
    """
    from irdet.data.io import atomic_write_bytes

    out = Path(out)
    if out.suffix != ".onnx":
        raise DataError(out, "an ONNX model file must end in .onnx")
    proto = build_onnx(module, opset, dynamic, half, source, optimize)
    atomic_write_bytes(out, proto.SerializeToString())
    return out
