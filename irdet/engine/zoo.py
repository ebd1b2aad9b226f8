"""Packaged model weights: the detector irdet ships, and how a trained checkpoint becomes one.

A weights file (``.pt``) is one ``torch.save`` dict, readable with ``weights_only=True``:

``format``
    ``"irdet-weights/1"``.
``config``
    the resolved config the model was trained with (it rebuilds the network).
``state_dict``
    the network's tensors, floating point ones stored as float16 (halves the size; they are
    loaded back as float32, and the stored metrics are those of the float16 weights).
``metrics``
    what the packaged weights scored (``{"split": "test_v2", "mAP07": ..., ...}``), or ``{}``.
``irdet_version``, ``source``
    the irdet version that wrote it and the checkpoint it came from (file name only).

Shipped files live in ``irdet/weights/<name>.pt`` with ``<name>.yaml`` (config) and
``<name>.metrics.json`` beside them for people to read; :data:`DEFAULT_MODEL` is what
``irdet detect`` (on images), ``irdet evaluate`` and ``irdet flops`` use without a checkpoint or
config, and :data:`DEFAULT_VIDEO_MODEL` what ``irdet detect`` uses on a video file or a frame
folder (:func:`default_model_for`).
Each file is at most :data:`MAX_BYTES`. Source: irdet extension.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import torch
import yaml

from irdet.data.datasets.inputs import IMAGE_SUFFIXES
from irdet.data.io import atomic_write_bytes, atomic_write_json
from irdet.engine.checkpoints import atomic_torch_save
from irdet.engine.module import DetectorModule
from irdet.errors import DataError

__all__ = ["WEIGHTS_DIR", "DEFAULT_MODEL", "DEFAULT_VIDEO_MODEL", "default_model_for", "FORMAT", "MAX_BYTES",
           "weights_path", "is_weights_file", "write_weights", "read_weights", "load_weights"]

#: folder of the shipped weights inside the package
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: name of the shipped default single-frame detector (``irdet/weights/<name>.pt``)
DEFAULT_MODEL = "fcos_r18_p2_light_native"
#: name of the shipped default multi-frame (video) detector
DEFAULT_VIDEO_MODEL = "yolobp_r18_t5_hard"
FORMAT = "irdet-weights/1"
#: largest weights file irdet ships (bytes)
MAX_BYTES = 25 * 2**20


def weights_path(name: str = DEFAULT_MODEL) -> Path:
    """``irdet/weights/<name>.pt`` (whether or not it exists)."""
    return WEIGHTS_DIR / f"{name}.pt"


def default_model_for(inputs, frames: bool = False) -> Path:
    """The shipped model ``irdet detect`` runs on ``inputs`` when no checkpoint is given.

    The video model (:data:`DEFAULT_VIDEO_MODEL`) for one input that is a video file (a file
    without an image suffix), or for one folder when ``frames`` is True (the folder holds the
    frames of one video); otherwise, for image files and folders of independent images, the
    single-frame model (:data:`DEFAULT_MODEL`). A folder is never guessed to be a video.

    Raises:
        DataError: the chosen model is not shipped with this irdet (naming the file).
    """
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    video_file = len(inputs) == 1 and Path(inputs[0]).is_file() and Path(inputs[0]).suffix.lower() not in IMAGE_SUFFIXES
    if frames or video_file:
        path = weights_path(DEFAULT_VIDEO_MODEL)
        if not path.is_file():
            raise DataError(path, "this irdet ships no video model yet: give a sequence checkpoint "
                                  "(irdet train configs/sequences/... then RUN/checkpoints/best.ckpt)")
        return path
    path = weights_path()
    if not path.is_file():
        raise DataError(path, "this irdet has no shipped default model yet: give a checkpoint "
                              "(irdet train ... then RUN/checkpoints/last.ckpt)")
    return path


def is_weights_file(path) -> bool:
    """True for a ``.pt`` path: a packaged weights file rather than a Lightning ``.ckpt``."""
    return Path(path).suffix == ".pt"


def _version() -> str:
    try:
        return metadata.version("irdet")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def write_weights(module, out, metrics: dict | None = None, source: str = "", max_bytes: int = MAX_BYTES) -> Path:
    """Write ``module``'s network as a float16 weights file, plus its config and metrics sidecars.

    Args:
        module: a :class:`~irdet.engine.module.DetectorModule` (any task).
        out: the ``.pt`` path; ``<stem>.yaml`` and ``<stem>.metrics.json`` are written beside it.
        metrics: what these weights scored (stored as given).
        source: where the weights came from (a checkpoint's file name).
        max_bytes: refuse a larger file.

    Returns:
        ``out`` as a Path. Every file is written atomically.

    Raises:
        DataError: ``out`` is not a ``.pt`` path, or the file would exceed ``max_bytes``.
    """
    out = Path(out)
    if not is_weights_file(out):
        raise DataError(out, "a weights file must end in .pt")
    state = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in module.model.state_dict().items()}
    # plain Python numbers: numpy scalars (metrics computed with numpy) would need pickled globals, and the
    # file is read with torch.load(weights_only=True)
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(metrics or {}).items()}
    obj = {"format": FORMAT, "config": module.config, "state_dict": state, "metrics": plain,
           "irdet_version": _version(), "source": source}
    atomic_torch_save(obj, out)
    size = out.stat().st_size
    if size > max_bytes:
        out.unlink()
        raise DataError(out, f"weights file of {size / 2**20:.1f} MB exceeds the {max_bytes / 2**20:.0f} MB limit")
    atomic_write_bytes(out.with_suffix(".yaml"), yaml.safe_dump(module.config, sort_keys=False).encode())
    atomic_write_json(out.with_name(out.stem + ".metrics.json"), obj["metrics"])
    return out


def read_weights(path) -> dict:
    """The dict stored in a weights file (see the module docstring), tensors on the CPU.

    Raises:
        DataError: missing file, unreadable file, or not an irdet weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
        raise DataError(path, f"not a readable weights file ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("state_dict"), dict):
        raise DataError(path, f"not an irdet weights file (expected format {FORMAT!r})")
    return obj


def load_weights(path):
    """Build the network of a weights file and load its weights (float32, eval mode, CPU).

    Returns:
        a :class:`~irdet.engine.module.DetectorModule` (of the config's task) whose
        ``packaged_metrics`` attribute holds the stored metrics.

    Raises:
        DataError: unreadable file, or weights that do not fit the network its config builds.
    """
    obj = read_weights(path)
    cfg = obj["config"]
    try:
        module = DetectorModule(cfg)
        module.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()})
    except Exception as exc:  # noqa: BLE001 - a config this irdet cannot build, or mismatched tensors
        raise DataError(path, f"weights do not fit the model of their config ({exc.__class__.__name__}: "
                              f"{str(exc)[:200]})") from None
    module.packaged_metrics = dict(obj.get("metrics") or {})
    module.eval()
    return module
