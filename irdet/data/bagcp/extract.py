"""Cutting BAG-CP target-library entries out of a split's images and target masks (Xiao et
al., arXiv 2407.20078, §IV-C step 1: "a target library").

What ``B_box`` is (irdet decision, paper Eq. 1)
-----------------------------------------------
The paper calls ``B_box`` "the original target appearance" and *adds* it to the new
background with weight 1 (``T_back`` is kept, unlike mixup). Adding the raw patch would add
the source's sky level too: a 4×4 patch of a target on a 120-grey sky pasted on a
120-grey sky becomes a 240-grey square. irdet therefore stores the target's **contrast
over its local background**::

    B_box = (patch − b) · M

* ``patch``: the source pixels (single channel: the mean of the three channels, which is the
  grey value itself for DenseSIRST's grey images; a pasted target adds the same value to
  the three channels);
* ``b``: the median of the *local background ring* — the pixels within ``ring`` px (default
  2) around the patch, clipped to the image, that are not target pixels (target mask, or
  the boxes when no mask is available). Fallbacks when the ring is empty (patch covering
  the image, or a ring made only of targets): median of the non-target pixels of the patch,
  then median of the whole patch (which gives ``B ≈ 0`` and is then dropped, see below);
* ``M``: the target mask (``SIRST/BinaryMask``) inside the patch. ``B`` is **signed**: a
  target colder than its sky (rare: 4 of 1,035 boxes in a sample of DenseSIRST) keeps its
  negative contrast and is pasted darker.

So Eq. (1) adds the target's own signal to the new background and leaves the pixels outside
the target mask untouched: no pasted square.

Geometry and size handling
--------------------------
* A ground-truth box (pixel-edge ``(x1, y1, x2, y2)``, :mod:`irdet.data.io`) covers pixel
  columns ``floor(x1) .. ceil(x2) − 1`` (rows alike), clipped to the image. A box that is
  empty after clipping (e.g. a box lying on the image's outer edge) is skipped and counted
  (``meta["skipped_empty"]``).
* The patch is **cropped to the bounding box of the mask pixels inside the box**. On
  DenseSIRST the xml boxes, read as written (``x1 = xmin``, ``x2 = xmax``,
  :mod:`irdet.data.io`), are already tight around their masks for 13,634 of the 13,655
  boxes; the other 21 are one pixel larger than their masks on the right and bottom sides
  (measured on all 1,024 images); cropping makes the library tight whatever the box
  convention. A box with no mask pixel keeps its whole area with ``M ≡ 1`` (counted in
  ``meta["mask_fallback"]``).
* Boxes touching the image border are kept; only their background ring is truncated (the
  available sides are used).
* 1-px boxes are kept as 1×1 entries (they paste as 1×1 targets; Eq. 2 is finite for them,
  see :func:`irdet.data.bagcp.gaussian_weights`).
* Entries whose ``max |B|`` is below ``min_contrast`` grey levels (default 1) are dropped
  (``meta["dropped_low_contrast"]``): they would paste an annotated but invisible target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from irdet.data.bagcp.library import TargetLibrary
from irdet.data.bagcp.sample import box_cells
from irdet.errors import DataError

__all__ = ["extract_targets", "build_target_library"]


def extract_targets(
    gray: np.ndarray,
    boxes: np.ndarray,
    target_mask: np.ndarray | None,
    *,
    ring: int = 2,
    min_contrast: float = 1.0,
    crop_to_mask: bool = True,
    counts: dict | None = None,
) -> list[dict]:
    """Cut the library entries of one image (see the module docstring for the rules).

    Args:
        gray: (H, W) float image in [0, 255].
        boxes: (N, 4) pixel-edge boxes.
        target_mask: (H, W) uint8/bool target mask or None (then ``M ≡ 1`` over each box).
        ring: width in pixels of the background ring.
        min_contrast: entries with ``max |B| < min_contrast`` are dropped.
        crop_to_mask: crop each patch to its mask pixels' bounding box inside the box.
        counts: optional dict whose counters (``boxes``, ``skipped_empty``, ``mask_fallback``,
            ``dropped_low_contrast``, ``negative_contrast``) are incremented.

    Returns:
        list of dicts with ``appearance``, ``mask``, ``patch``, ``background`` and
        ``box`` (pixel-edge crop ``(c0, r0, c1, r1)``).
    """
    counts = counts if counts is not None else {}
    for k in ("boxes", "skipped_empty", "mask_fallback", "dropped_low_contrast", "negative_contrast"):
        counts.setdefault(k, 0)
    h, w = gray.shape
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    tmask = None if target_mask is None else np.asarray(target_mask) > 0
    if tmask is not None and tmask.shape != (h, w):
        raise ValueError(f"target mask shape {tmask.shape} differs from image shape {(h, w)}")
    if tmask is None:  # exclusion raster for the background ring: all boxes
        exclude = np.zeros((h, w), bool)
        for b in boxes:
            r0, r1, c0, c1 = box_cells(b, h, w)
            exclude[r0:r1, c0:c1] = True
    else:
        exclude = tmask
    out = []
    for b in boxes:
        counts["boxes"] += 1
        r0, r1, c0, c1 = box_cells(b, h, w)
        if r1 <= r0 or c1 <= c0:
            counts["skipped_empty"] += 1
            continue
        m = None if tmask is None else tmask[r0:r1, c0:c1]
        if m is None or not m.any():
            counts["mask_fallback"] += 1
            m = np.ones((r1 - r0, c1 - c0), bool)
        elif crop_to_mask:
            ys, xs = np.nonzero(m)
            r0, r1, c0, c1 = r0 + int(ys.min()), r0 + int(ys.max()) + 1, c0 + int(xs.min()), c0 + int(xs.max()) + 1
            m = tmask[r0:r1, c0:c1]
        patch = gray[r0:r1, c0:c1].astype(np.float32)
        R0, R1, C0, C1 = max(0, r0 - ring), min(h, r1 + ring), max(0, c0 - ring), min(w, c1 + ring)
        sel = ~exclude[R0:R1, C0:C1].copy()
        sel[r0 - R0 : r1 - R0, c0 - C0 : c1 - C0] = False
        if sel.any():
            bg = float(np.median(gray[R0:R1, C0:C1][sel]))
        elif (~m).any():
            bg = float(np.median(patch[~m]))
        else:
            bg = float(np.median(patch))
        app = ((patch - bg) * m).astype(np.float32)
        if float(np.abs(app).max()) < min_contrast:
            counts["dropped_low_contrast"] += 1
            continue
        if float(app[m].mean()) < 0:
            counts["negative_contrast"] += 1
        out.append({"appearance": app, "mask": m.copy(), "patch": patch, "background": bg, "box": (c0, r0, c1, r1)})
    return out


def build_target_library(
    dataset_or_root,
    split: str | Sequence[str] = "trainval_v2",
    *,
    target_mask: str | None = "binary",
    ring: int = 2,
    min_contrast: float = 1.0,
    crop_to_mask: bool = True,
    max_images: int | None = None,
    progress: bool = False,
) -> TargetLibrary:
    """Extract every box of a split into a :class:`TargetLibrary`.

    Args:
        dataset_or_root: a :class:`irdet.data.datasets.densesirst.DenseSIRST` (its root and ids are
            used; ``split`` is then ignored) or a DenseSIRST-layout root folder.
        split: split name or explicit list of image ids (with a root).
        target_mask: ``"binary"`` (``SIRST/BinaryMask``), ``"palette"`` or None (no masks:
            every box pasted whole, ``M ≡ 1``).
        ring: background-ring width in pixels.
        min_contrast: drop entries whose ``max |B|`` is below this many grey levels.
        crop_to_mask: crop each patch to its mask's bounding box inside the box.
        max_images: only the first N images (quick builds, benchmarks).
        progress: show a tqdm progress bar.

    Returns:
        the library; ``meta`` records the source, the parameters and the counters
        ``images, boxes, entries, skipped_empty, mask_fallback, dropped_low_contrast,
        negative_contrast``.

    Raises:
        DataError: missing split / image / xml / mask (names the file).
    """
    from irdet.data.datasets.densesirst import DenseSIRST

    if isinstance(dataset_or_root, DenseSIRST):
        root, ids = dataset_or_root.root, list(dataset_or_root.ids)
        split_name = dataset_or_root.split
    else:
        root = Path(dataset_or_root)
        if not root.is_dir():
            raise DataError(root, "dataset root not found")
        ds0 = DenseSIRST(root, split, sky_mask=None)
        ids, split_name = list(ds0.ids), ds0.split
    if max_images is not None:
        ids = ids[: int(max_images)]
    ds = DenseSIRST(root, ids, sky_mask=None, target_mask=target_mask)
    counts: dict = {"images": 0}
    app, msk, pat, bgs, sids, sboxes = [], [], [], [], [], []
    it: Iterable[int] = range(len(ds))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="target library", unit="img")
    for i in it:
        raw = ds.load_raw(i)
        counts["images"] += 1
        gray = raw["image"].mean(axis=2)
        for e in extract_targets(
            gray,
            raw["boxes"],
            raw.get("target_mask"),
            ring=ring,
            min_contrast=min_contrast,
            crop_to_mask=crop_to_mask,
            counts=counts,
        ):
            app.append(e["appearance"])
            msk.append(e["mask"])
            pat.append(e["patch"])
            bgs.append(e["background"])
            sids.append(raw["image_id"])
            sboxes.append(e["box"])
    counts["entries"] = len(app)
    meta = {
        "source_root": str(os.path.abspath(root)),
        "split": split_name,
        "target_mask": target_mask,
        "ring": ring,
        "min_contrast": min_contrast,
        "crop_to_mask": crop_to_mask,
        **counts,
    }
    return TargetLibrary(
        app,
        msk,
        patches=pat,
        background=bgs,
        source_ids=sids,
        source_boxes=np.asarray(sboxes, np.float32).reshape(-1, 4),
        meta=meta,
    )
