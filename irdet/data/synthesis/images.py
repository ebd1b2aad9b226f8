"""``irdet synthesize``: a dense, DenseSIRST-style dataset from a dataset with sky masks (BAFE-Net paper §III-B).

For every image of a split, :func:`synthesize` pastes 1–3 dense areas (20×20 px, 8–12
targets ≤ 5×5 px, 1–2 px apart, Eq. 1 Gaussian blending, sky only) with the BAG-CP
machinery (:class:`irdet.data.bagcp.BAGCP`) **in the original pixels**, and writes a
dataset in the official DenseSIRST layout (files of one image:
:mod:`irdet.data.synthesis.densesirst_writer`)::

    out_dir/PNGImages/<id>.png                   8-bit; L for grey / 16-bit sources, else RGB
    out_dir/SIRST/BBox/<id>.xml                  original + pasted boxes (VOC numbering)
    out_dir/SIRST/BinaryMask/<id>_pixels0.png    target mask, 255 = target
    out_dir/SIRST/PaletteMask/<id>.png           target mask, palette index 1 = target
    out_dir/SIRST/Point_label/<id>_pixels0.txt   "col row" per target, 0-based
    out_dir/SkySeg/{PaletteMask,BinaryMask}/...  copied unchanged from the source
    out_dir/Splits/<split>.txt, Splits/all.txt   the ids written
    out_dir/synthesis_summary.json               the summary returned

Original boxes round-trip exactly and the output loads with
``DenseSIRST(out_dir, split, sky_mask="palette", target_mask="binary", points=True)``.

Box style: the pasted boxes follow the **source's annotation style** (``box_margin="auto"``):
the margin between the boxes as read and the bounding boxes of their mask pixels is
measured on the source (the most common (left, top, right, bottom) over up to 20 images,
:func:`measure_box_margin`) and added to the pasted boxes (:class:`~irdet.data.bagcp.BAGCP`
``box_margin``). On DenseSIRST read with the present io convention that margin is
``(0, 0, 0, 0)`` (boxes tight around their masks for 13,634 of 13,655 boxes), so a pasted
target is written exactly like an original one (``xmin`` = its first mask column, 0-based).
Without source masks the margin is 0.

Source requirements: the DenseSIRST layout with ``SkySeg/PaletteMask``; ``SIRST/BinaryMask``
and ``SIRST/Point_label`` are optional (without masks, the original targets' masks are their
boxes; without points, their points are their boxes' centre pixels). Every file is written
atomically (temp file + rename); the source is never written to.

Randomness: image ``i`` of the split uses ``numpy.random.default_rng([seed, i])``, so a
run is reproducible and any image can be regenerated alone.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from irdet.data.bagcp import BAGCP, TargetLibrary, build_target_library
from irdet.data.io import atomic_write_json
from irdet.data.synthesis.common import check_output_folder, check_source_root, progress_range, write_lines
from irdet.data.synthesis.densesirst_writer import GREY_MODES, OUTPUT_FOLDERS, write_image_files
from irdet.errors import ConfigError

__all__ = ["synthesize", "print_summary", "measure_box_margin"]


def measure_box_margin(dataset, max_images: int = 20) -> tuple[int, int, int, int]:
    """Most common (left, top, right, bottom) margin, in pixels, between a dataset's boxes (as
    read) and the bounding box of the target-mask pixels inside each box.

    Args:
        dataset: a :class:`irdet.data.datasets.densesirst.DenseSIRST` with ``target_mask`` set.
        max_images: look at the first N images.

    Returns:
        the margin (0, 0, 0, 0) when the dataset has no target masks or no box holds a mask pixel.
    """
    if not dataset.target_mask:
        return (0, 0, 0, 0)
    votes: collections.Counter = collections.Counter()
    for i in range(min(max_images, len(dataset))):
        raw = dataset.load_raw(i)
        m = raw["target_mask"] > 0
        h, w = m.shape
        for x1, y1, x2, y2 in np.asarray(raw["boxes"], np.float64).reshape(-1, 4):
            c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c1, r1 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
            sub = m[r0:r1, c0:c1]
            if sub.any():
                ys, xs = np.nonzero(sub)
                votes[(int(xs.min()), int(ys.min()), c1 - c0 - 1 - int(xs.max()), r1 - r0 - 1 - int(ys.max()))] += 1
    return votes.most_common(1)[0][0] if votes else (0, 0, 0, 0)


def _np(t) -> np.ndarray:
    return t.as_subclass(torch.Tensor).detach().cpu().numpy()


def _library(src: Path, library, split: str, has_mask: bool, progress: bool) -> TargetLibrary:
    """``library`` (object or saved file), else one built from ``split`` of the source."""
    if library is None:
        return build_target_library(src, split, target_mask="binary" if has_mask else None, progress=progress)
    return library if isinstance(library, TargetLibrary) else TargetLibrary.load(library)


def _bagcp(library: TargetLibrary, box_margin, ds, params: dict) -> tuple[BAGCP, tuple]:
    """(the BAG-CP paster that always pastes, the box margin used).

    Raises:
        ConfigError: ``box_margin`` is neither ``"auto"`` nor 4 integers, or a bad BAG-CP parameter.
    """
    if isinstance(box_margin, str):
        if box_margin != "auto":
            raise ConfigError(f"synthesize: box_margin must be 'auto' or 4 integers, got {box_margin!r}")
        box_margin = measure_box_margin(ds)
    try:
        box_margin = tuple(int(v) for v in box_margin)
        return BAGCP(library, copy_paste=True, prob=1.0, box_margin=box_margin, **params), box_margin
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"synthesize: {exc}") from None


def _with_masks_and_points(raw: dict) -> dict:
    """Fill what the source lacks: target masks = the boxes, points = the boxes' centre pixels."""
    h, w = raw["image"].shape[:2]
    if "target_mask" not in raw:  # no source masks: the boxes stand for the targets
        m = np.zeros((h, w), np.uint8)
        for x1, y1, x2, y2 in raw["boxes"]:
            m[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = 1
        raw["target_mask"] = m
    if "points" not in raw:
        b = raw["boxes"]
        raw["points"] = np.stack(
            [np.floor((b[:, 0] + b[:, 2]) / 2), np.floor((b[:, 1] + b[:, 3]) / 2)], axis=1
        ).astype(np.float32).reshape(-1, 2)
    return raw


def _synthesize_image(ds, i: int, bag: BAGCP, seed: int, out: Path, src: Path) -> tuple[int, int]:
    """Paste into image ``i`` of ``ds`` with ``default_rng([seed, i])`` and write its files:
    (targets before, targets added)."""
    from irdet.data.datasets.base import to_sample

    image_id = ds.ids[i]
    raw = _with_masks_and_points(ds.load_raw(i))
    n0 = len(raw["boxes"])
    sample = bag(to_sample(raw), rng=np.random.default_rng([int(seed), i]))
    boxes = _np(sample["boxes"]).reshape(-1, 4)
    with Image.open(ds.image_path(image_id)) as im:
        grey = im.mode in GREY_MODES
    write_image_files(out, src, image_id, _np(sample["image"]).transpose(1, 2, 0), grey, boxes,
                      _np(sample["target_mask"]), _np(sample["points"]).reshape(-1, 2))
    return n0, len(boxes) - n0


def synthesize(
    source_root,
    split: str,
    out_dir,
    seed: int = 0,
    *,
    library: TargetLibrary | str | os.PathLike | None = None,
    library_split: str | None = None,
    regions: Sequence[int] = (1, 3),
    region_size: int = 20,
    targets_per_region: Sequence[int] = (8, 12),
    max_target_size: int = 5,
    gap: Sequence[int] = (1, 2),
    lam: Sequence[float] = (0.5, 1.0),
    rho: Sequence[float] = (0.0, 0.2),
    sigma: Sequence[float] = (0.3, 0.6),
    theta: Sequence[float] = (-90.0, 90.0),
    cluster: bool = True,
    gaussian: bool = True,
    background_aware: bool = True,
    box_margin: Sequence[int] | str = "auto",
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Paste dense target clusters into every image of a split and write a DenseSIRST-layout dataset.

    Args:
        source_root: DenseSIRST-layout root of the base images (needs ``SkySeg/PaletteMask``).
        split: split name (``Splits/<split>.txt`` of the source).
        out_dir: output root (created; must be empty unless ``overwrite``; may not lie
            inside the source).
        seed: random seed (image ``i`` uses ``default_rng([seed, i])``).
        library: a :class:`TargetLibrary`, the path of a saved one, or None to build one
            from ``library_split`` of the source (default: ``split`` itself).
        library_split: split to build the library from when ``library`` is None.
        regions, region_size, targets_per_region, max_target_size, gap, lam, rho, sigma,
            theta, cluster, gaussian, background_aware: as :class:`irdet.data.bagcp.BAGCP`
            (paper values by default).
        box_margin: margin added to the pasted boxes, or ``"auto"`` to follow the source's
            annotation style (:func:`measure_box_margin`, see the module docstring).
        limit: only the first N images of the split.
        overwrite: allow writing into a non-empty ``out_dir`` (files are replaced).
        progress: tqdm progress bar.

    Returns:
        summary dict: ``source``, ``split``, ``out_dir``, ``seed``, ``images``, ``ids``,
        ``targets_original`` (per image), ``targets_added`` (per image),
        ``targets_added_mean``, ``targets_added_total``, ``regions_requested``,
        ``regions_placed``, ``regions_refused``, ``targets_requested``, ``targets_refused``,
        ``library_size``, ``box_margin``, ``params``. Also written to ``out_dir/synthesis_summary.json``.

    Raises:
        DataError: missing source files, or an unusable ``out_dir``.
        ConfigError: bad parameter values.
    """
    from irdet.data.datasets.densesirst import DenseSIRST, read_split

    src = Path(source_root)
    out = Path(out_dir)
    check_source_root(src)
    check_output_folder(out, src, overwrite)
    ids = read_split(src, split)
    if limit is not None:
        ids = ids[: int(limit)]
    has_mask = (src / "SIRST" / "BinaryMask").is_dir()
    has_points = (src / "SIRST" / "Point_label").is_dir()
    ds = DenseSIRST(src, ids, sky_mask="palette", target_mask="binary" if has_mask else None, points=has_points)
    library = _library(src, library, library_split or split, has_mask, progress)
    params = dict(
        regions=tuple(regions),
        region_size=region_size,
        targets_per_region=tuple(targets_per_region),
        max_target_size=max_target_size,
        gap=tuple(gap),
        lam=tuple(lam),
        rho=tuple(rho),
        sigma=tuple(sigma),
        theta=tuple(theta),
        cluster=cluster,
        gaussian=gaussian,
        background_aware=background_aware,
    )
    bag, box_margin = _bagcp(library, box_margin, ds, params)
    for sub in OUTPUT_FOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)

    added, original = [], []
    for i in progress_range(len(ds), f"synthesize {split}", "img", progress):
        n0, n_new = _synthesize_image(ds, i, bag, seed, out, src)
        added.append(int(n_new))
        original.append(int(n0))

    write_lines(out / "Splits" / f"{split}.txt", ds.ids)
    if split != "all":
        write_lines(out / "Splits" / "all.txt", ds.ids)
    s = bag.stats
    summary = {
        "source": str(src),
        "split": split,
        "out_dir": str(out),
        "seed": int(seed),
        "images": len(ds.ids),
        "ids": list(ds.ids),
        "targets_original": original,
        "targets_added": added,
        "targets_added_mean": float(np.mean(added)) if added else 0.0,
        "targets_added_total": int(sum(added)),
        "regions_requested": s["regions_requested"],
        "regions_placed": s["regions_placed"],
        "regions_refused": s["regions_refused"],
        "targets_requested": s["targets_requested"],
        "targets_refused": s["targets_refused"],
        "library_size": len(library),
        "box_margin": list(box_margin),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
    }
    atomic_write_json(out / "synthesis_summary.json", summary)
    return summary


def print_summary(summary: dict) -> str:
    """One short human-readable report of a :func:`synthesize` summary (returned, not printed)."""
    added = summary.get("targets_added", [])
    lines = [
        f"synthesized {summary['images']} images of split '{summary['split']}' from {summary['source']}",
        f"  output:           {summary['out_dir']}",
        f"  seed:             {summary['seed']}   library: {summary['library_size']} targets",
        f"  targets added:    {summary['targets_added_total']} (mean {summary['targets_added_mean']:.1f}/image, "
        f"min {min(added) if added else 0}, max {max(added) if added else 0}); "
        f"original targets {sum(summary.get('targets_original', []))}",
        f"  regions:          {summary['regions_placed']} placed / {summary['regions_requested']} requested, "
        f"{summary['regions_refused']} refused",
        f"  targets refused:  {summary['targets_refused']} of {summary['targets_requested']} requested",
    ]
    return "\n".join(lines)
