"""YAML configuration: defaults, ``_base_`` inheritance, ``--set key=value`` overrides, validation.

A config file holds only what differs from :data:`DEFAULTS` (the paper protocol for
BAFE-Net-R18 on DenseSIRST: BAFE-Net paper §IV–§V-A and its reference config) or from the files named in its ``_base_`` (a path or
list of paths relative to the file, merged in order). Unknown keys are errors, so a typo
never silently falls back to a default, and values are checked against the defaults' types
and a few ranges and choices (:mod:`irdet.config_values`) before anything runs.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

from irdet.config_values import check_values
from irdet.errors import ConfigError
from irdet.models.registry import model_defaults, section_keys, temporal_defaults

__all__ = ["DEFAULTS", "load_config", "merge", "apply_overrides", "validate", "FREE_FORM", "SEQUENCE_DEFAULTS", "TASKS",
           "config_task"]

DEFAULTS: dict[str, Any] = {
    "name": "bafenet_r18_densesirst",
    # model parts (backbone, neck, heads) and input normalisation: the defaults each part declares
    # (irdet.models.registry.model_defaults; e.g. irdet.models.heads.fcos.FCOSHead.CONFIG)
    "model": model_defaults(),
    "data": {
        "root": None,
        "train_split": "trainval_v2",
        # null: no validation, last.ckpt is the model (paper protocol trains on trainval_v2, which holds all of val_v2, so
        # selecting on val_v2 would select on training images). Select only with train_split train_v2.
        "val_split": None,
        "test_split": "test_v2",
        "sky_mask": "palette",
        # [H, W] resize (stretched unless keep_ratio), or null: native resolution, no resize (irdet extension)
        "img_size": [512, 512],
        "keep_ratio": False,
        "flip_prob": 0.5,
        "pad_divisor": 32,
        "repeat": 3,
        "crop": None,
        "crop_p_target": 0.9,
        # boxes a target-centred crop may centre on: all (BAG-CP pasted included) | gt (irdet extension)
        "crop_on": "all",
        # training boxes under 1 px after the resize: keep (grown to 1 px, as the reference keeps them) | drop
        # (irdet before; irdet.data.transforms.KeepTinyBoxes)
        "tiny_boxes": "keep",
        # single-frame dataset layout (irdet.data.datasets.DATASETS): densesirst (SIRSTdevkit folders)
        "layout": "densesirst",
        "num_workers": 2,
        # BAG-CP (paper §III-B/§IV-C, Table III row f); see irdet.data.bagcp for all parameters.
        # library: a saved target library (.npz); null = built from train_split and cached.
        "bagcp": {"enabled": True, "copy_paste": True, "cluster": True, "gaussian": True, "background_aware": True,
                  "library": None},
    },
    "train": {
        "batch_size": 2,
        "max_epochs": 20,
        "max_steps": -1,
        "lr": 1.0,
        "weight_decay": 0.05,
        "warmup_iters": 500,
        "warmup_factor": 1.0 / 3,
        "milestones": [8, 16],
        "gamma": 0.1,
        "seed": 0,
        "val_interval": 1,
        "checkpoint_every_n_steps": 200,
        "precision": "32-true",
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "log_every_n_steps": 10,
        "limit_train_batches": None,
        "limit_val_batches": None,
        "threads": None,
    },
    # tile: null = the whole input in one pass; [h, w] pixels of the network input = tiled inference,
    # tiles overlapping by >= tile_overlap px, tile_batch tiles per network call (irdet.models.tiling)
    "eval": {"pdfa_score_thr": 0.5, "batch_size": 2, "tile": None, "tile_overlap": 32, "tile_batch": 4},
    # notes for tables (irdet ablate): a row's description and the paper's numbers for it
    "description": "",
    "paper": {},
}

#: Sections whose keys are not checked against DEFAULTS (each module validates its own). The keys of
#: the model parts' sections (``model.backbone``, ``model.neck``, ``model.head``, ``model.temporal``)
#: are those the part named there declares (:func:`irdet.models.registry.section_keys`).
FREE_FORM = {("data", "bagcp"), ("paper",), ("sequence", "ann_files")}

# ---------------------------------------------------------------------------------------------
# Task hook (moving targets, multi-frame). ``task: detect`` (single-frame, the default) or
# ``task: sequence`` (multi-frame clips, :mod:`irdet.engine.tasks.sequence`). The sequence keys below
# are merged in *only* for ``task: sequence`` and ``task: detect`` is dropped from resolved
# configs, so single-frame configs resolve exactly as before (same keys, same ablation hashes).
TASKS = ("detect", "sequence")
SEQUENCE_DEFAULTS: dict[str, Any] = {
    "task": "sequence",
    "model": {
        # temporal fusion over the T per-frame maps of `level` (P3, stride 8): type, num_frames, level and the fusion blocks' keys
        # (irdet.models.registry.temporal_defaults; irdet.models.temporal.TemporalFusion3D.CONFIG)
        "temporal": temporal_defaults(),
    },
    "sequence": {
        # dataset layout (irdet.data.datasets.sequence_layouts.LAYOUTS): irdet (synthetic) | irdst | daub | itsdt;
        # data.train_split / val_split / test_split name the splits (e.g. train / val / test)
        "layout": "irdet",
        # explicit COCO json per split name (relative to the data root); overrides the layout
        "ann_files": {},
        "image_dir": None,         # frames folder for ann_files entries (None: auto)
        "context": "listed",       # clip context frames: listed (JSON order) | numbers (reference, from disk)
        "train_skip_empty": False,  # train only on frames with targets
        "eval_skip_empty": False,   # evaluate only frames with targets (the reference scripts do)
    },
}


def merge(base: dict, update: dict) -> dict:
    """Deep-merge ``update`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular _base_ chain")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict = {}
    for base in bases:
        merged = merge(merged, _read_yaml(path.parent / base, seen + (path,)))
    return merge(merged, data)


def config_task(cfg: dict) -> str:
    """``cfg``'s task: ``"detect"`` (no ``task`` key) or ``"sequence"``."""
    return cfg.get("task") or "detect"


def _apply_task(cfg: dict) -> tuple[dict, dict]:
    """Task hook: returns ``(cfg, reference)``; for ``task: sequence`` the sequence defaults are
    merged under ``cfg`` and added to the validation reference; ``task: detect`` is dropped.

    Raises:
        ConfigError: unknown task.
    """
    task = config_task(cfg)
    if task not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
    if task == "detect":
        cfg.pop("task", None)
        return cfg, DEFAULTS
    return merge(SEQUENCE_DEFAULTS, cfg), merge(DEFAULTS, SEQUENCE_DEFAULTS)


def validate(cfg: dict, ref: dict = DEFAULTS, prefix: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` for keys of ``cfg`` that :data:`DEFAULTS` does not know.

    A model part's section is checked against the keys that part declares
    (:func:`irdet.models.registry.section_keys`: e.g. ``model.neck`` with ``type: bpfpn`` accepts
    ``shortcut`` and ``dgr``, with ``type: fpn`` it does not); :data:`FREE_FORM` sections are not checked.
    """
    for key, value in cfg.items():
        path = prefix + (key,)
        if key not in ref:
            hint = difflib.get_close_matches(key, list(ref), n=1)
            msg = f"unknown config key '{'.'.join(path)}'"
            raise ConfigError(msg + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        if isinstance(value, dict) and isinstance(ref[key], dict) and path not in FREE_FORM:
            keys = section_keys(path, value)
            validate(value, ref[key] if keys is None else keys, path)


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Apply ``a.b.c=value`` strings (values parsed as YAML: ``2``, ``[256, 256]``, ``null``)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = cfg
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node[parts[-1]] = value
    return cfg


def _find(path: str | Path) -> Path:
    """A config path; a bare name is looked up in the repository's ``configs/`` folder."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        for folder in (Path("configs"), Path(__file__).resolve().parent.parent / "configs"):
            hits = sorted(folder.rglob(f"{p.name}.yaml")) if folder.is_dir() else []
            if hits:
                return hits[0]
    return p


def load_config(path: str | Path | list | None = None, overrides: Iterable[str] = ()) -> dict:
    """Load a config: DEFAULTS ← ``_base_`` files ← the file(s) ← overrides, then validate.

    Args:
        path: YAML file, a list of files merged in order (e.g. a row and a budget overlay),
            or None for the defaults alone. A bare name (``bafenet_r18_densesirst``) is
            looked up in the repository's ``configs/`` folder. The run name is the stem of
            the first file.
        overrides: ``key.path=value`` strings.

    Raises:
        ConfigError: missing/invalid file, unknown key, bad override, a value of the wrong type
            or out of range (:func:`irdet.config_values.check_values`).
    """
    cfg = copy.deepcopy(DEFAULTS)
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    for i, item in enumerate(paths):
        p = _find(item)
        cfg = merge(cfg, _read_yaml(p))
        if i == 0:
            cfg["name"] = p.stem  # runs are named after their config file
    cfg = apply_overrides(cfg, overrides)
    cfg, ref = _apply_task(cfg)
    validate(cfg, ref)
    check_values(cfg, ref)
    return cfg
