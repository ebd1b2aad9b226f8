"""Small DenseSIRST-layout datasets built in a temporary folder (synthetic, or linking real files)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script folder, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_xml(path: Path, boxes, size=None) -> None:
    """Pascal-VOC xml with ``Target`` objects; ``boxes`` (xmin, ymin, xmax, ymax) in pixel edges."""
    objs = "".join(
        f"<object><name>Target</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    sz = f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>1</depth></size>" if size else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{path.stem}</filename>{sz}{objs}</annotation>")


def make_dataset(root: Path, images: dict[str, tuple[np.ndarray, list]], split: str = "test_v2", sky=None) -> Path:
    """Write a synthetic DenseSIRST-layout dataset.

    Args:
        images: id → (image array (H, W) or (H, W, C) uint8/uint16, boxes in xml numbering).
        sky: optional id → (H, W) {0, 1} sky mask (default: top half sky).
    """
    for sub in ("PNGImages", "SIRST/BBox", "SIRST/BinaryMask", "SIRST/PaletteMask", "SIRST/Point_label",
                "SkySeg/PaletteMask", "SkySeg/BinaryMask", "Splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (arr, boxes) in images.items():
        h, w = arr.shape[:2]
        Image.fromarray(arr).save(root / "PNGImages" / f"{image_id}.png")
        write_xml(root / "SIRST" / "BBox" / f"{image_id}.xml", boxes, (h, w))
        target = np.zeros((h, w), np.uint8)
        pts = []
        for xmin, ymin, xmax, ymax in boxes:
            target[ymin:ymax, xmin:xmax] = 1
            pts.append(f"{(xmin + xmax - 1) // 2} {(ymin + ymax - 1) // 2}")
        Image.fromarray(target * 255).save(root / "SIRST" / "BinaryMask" / f"{image_id}_pixels0.png")
        pal = Image.fromarray(target, mode="P")
        pal.putpalette([0, 0, 0, 255, 255, 255])
        pal.save(root / "SIRST" / "PaletteMask" / f"{image_id}.png")
        (root / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt").write_text("\n".join(pts) + "\n")
        s = (sky or {}).get(image_id)
        if s is None:
            s = np.zeros((h, w), np.uint8)
            s[: h // 2] = 1
        sp = Image.fromarray(s.astype(np.uint8), mode="P")
        sp.putpalette([0, 0, 0, 128, 128, 255])
        sp.save(root / "SkySeg" / "PaletteMask" / f"{image_id}.png")
        Image.fromarray(s.astype(np.uint8) * 255).save(root / "SkySeg" / "BinaryMask" / f"{image_id}_pixels0.png")
    (root / "Splits" / f"{split}.txt").write_text("\n".join(images) + "\n")
    return root


def link_dataset(real_root: Path, root: Path, splits: dict[str, list[str]]) -> Path:
    """A dataset root whose data folders are symlinks to ``real_root`` and whose splits are ``splits``."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("PNGImages", "SIRST", "SkySeg"):
        os.symlink(Path(real_root).resolve() / sub, root / sub)
    (root / "Splits").mkdir()
    for name, ids in splits.items():
        (root / "Splits" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


def read_split(real_root: Path, name: str) -> list[str]:
    return [line.strip() for line in (Path(real_root) / "Splits" / f"{name}.txt").read_text().splitlines() if line.strip()]


#: ``--set`` overrides that make a training step on real DenseSIRST images take about a second
#: on one CPU thread (FCOS configs: 128x128 input, no crop, no BAG-CP, 32-channel neck and head)
TINY_TRAIN = ["data.img_size=[128,128]", "data.crop=null", "data.bagcp.enabled=false", "model.neck.out_channels=32",
              "model.head.feat_channels=32", "model.head.stacked_convs=1", "data.num_workers=0", "train.threads=1",
              "train.checkpoint_every_n_steps=1", "train.log_every_n_steps=1"]


def small_densesirst(real_root: Path, root: Path, n_train: int = 4, n_val: int = 2, n_test: int = 2) -> Path:
    """A linked DenseSIRST root with the first images of each split: ``train_v2``, ``val_v2``,
    ``trainval_v2`` (= those train + val images, as in the real splits) and ``test_v2``."""
    train, val = read_split(real_root, "train_v2")[:n_train], read_split(real_root, "val_v2")[:n_val]
    return link_dataset(real_root, root, {"train_v2": train, "val_v2": val, "trainval_v2": train + val,
                                          "test_v2": read_split(real_root, "test_v2")[:n_test]})


def write_corrupt_png(path: Path, shape=(64, 64)) -> Path:
    """A PNG whose header and chunk checksums are valid (``Image.open`` and ``Image.verify``
    pass) but whose pixel data does not decompress: it fails only when the pixels are read."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == b"IDAT":
            for i in range(pos + 8 + n // 2, min(pos + 8 + n // 2 + 16, pos + 8 + n)):
                data[i] ^= 0xFF
            data[pos + 8 + n:pos + 12 + n] = struct.pack(">I", zlib.crc32(bytes(data[pos + 4:pos + 8 + n])) & 0xFFFFFFFF)
        pos += 12 + n
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


#: overrides for a tiny FCOS-R18 (random init, 64x64 inputs) that builds and runs in about a second
TINY_FCOS = ["model.neck.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=1",
             "data.img_size=[64,64]", "data.num_workers=0", "data.bagcp.enabled=false", "data.repeat=1"]


def make_checkpoint(path: Path, overrides=(), module=None) -> Path:
    """Write an irdet checkpoint of ``module`` (default: a randomly initialised tiny FCOS-R18,
    :data:`TINY_FCOS` + ``overrides``) without a training run; :func:`irdet.engine.predict.load_checkpoint` reads it."""
    import lightning as L
    import torch

    from irdet.config import load_config
    from irdet.engine.module import DetectorModule

    if module is None:
        torch.manual_seed(0)
        module = DetectorModule(load_config("fcos_r18_densesirst_cpu", [*TINY_FCOS, *overrides]))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"config": module.config},
                "pytorch-lightning_version": L.__version__, "epoch": 0, "global_step": 0}, path)
    return path
