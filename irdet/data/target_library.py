"""Target library for BAG-CP: small-target patches cut from training images (paper §IV-C, step 1).

A :class:`TargetLibrary` holds, for every usable ground-truth box of a split, the target's
**appearance** ``B_box`` of Eq. (1) ``T_new = T_back + B_box · λ · G`` together with its
binary footprint, so that BAG-CP (:mod:`irdet.data.bagcp`) and the dataset synthesis
(:mod:`irdet.data.synthesis`) can paste it anywhere.

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
* Patches are stored at their **original size**. :meth:`TargetLibrary.resized` shrinks a
  patch at paste time so that it fits in ``max_size × max_size`` keeping the aspect ratio
  (area averaging; never enlarged; each side at least 1 px): paper "resized to dimensions
  within 5 × 5 pixels".

Storage: one ``.npz`` file (flat arrays plus shapes, no pickle), written atomically.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from irdet.data.io import atomic_write_bytes
from irdet.errors import DataError

__all__ = ["TargetLibrary", "build_target_library", "area_resize_matrix", "area_resample", "LIBRARY_FORMAT"]

#: Format tag stored in every library file.
LIBRARY_FORMAT = "irdet-target-library/1"


def area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 matrix of area-averaging weights (rows sum to 1).

    Output cell ``j`` covers input interval ``[j·n_in/n_out, (j+1)·n_in/n_out)``; the weight of
    input pixel ``k`` is its overlap with that interval divided by the interval length.
    """
    scale = n_in / n_out
    edges = np.arange(n_out + 1, dtype=np.float64) * scale
    k = np.arange(n_in, dtype=np.float64)
    lo = np.maximum(k[None, :], edges[:-1, None])
    hi = np.minimum(k[None, :] + 1.0, edges[1:, None])
    return np.clip(hi - lo, 0.0, None) / scale




def area_resample(a: np.ndarray, m: np.ndarray, nh: int, nw: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted resampling of a target's contrast ``a`` and mask ``m`` (h, w) to (nh, nw).

    Returns ``(B, F)``: ``F = area(m) ≥ 0.5`` per output cell (the most covered cell when that
    is empty) and ``B`` the mean contrast of the target pixels in each cell
    (``area(a·m) / area(m)``), zero outside ``F`` — so resizing neither dims nor smears a target.
    """
    ry, rx = area_resize_matrix(a.shape[0], nh), area_resize_matrix(a.shape[1], nw)
    cover = ry @ m.astype(np.float64) @ rx.T
    signal = ry @ (a.astype(np.float64) * m) @ rx.T
    f = cover >= 0.5 - 1e-9
    if not f.any():
        f = cover >= cover.max() - 1e-12
    return np.where(cover > 0, signal / np.maximum(cover, 1e-12), 0.0) * f, f

def fit_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    """Size of an (h, w) patch shrunk to fit in ``max_size × max_size`` keeping aspect (never enlarged)."""
    s = min(1.0, max_size / max(h, w))
    return max(1, min(max_size, int(np.floor(h * s + 0.5)))), max(1, min(max_size, int(np.floor(w * s + 0.5))))


class TargetLibrary:
    """A set of small-target appearances (see the module docstring for what is stored).

    Args:
        appearance: sequence of (h, w) float32 arrays ``B_box`` (signed contrast, 0 outside the mask).
        masks: sequence of (h, w) bool arrays (the target's pixels); default: ``B != 0``,
            or all-true when ``B`` is all zero.
        patches: optional raw grey patches (h, w) float32 (kept for inspection / other uses).
        background: optional (N,) local background levels ``b``.
        source_ids: optional (N,) image ids the entries come from.
        source_boxes: optional (N, 4) pixel-edge crop of each entry in its source image.
        meta: free-form dict (build parameters and counts).

    Raises:
        ValueError: inconsistent lengths or shapes, an empty patch, or a non-finite value.
    """

    def __init__(
        self,
        appearance: Sequence[np.ndarray],
        masks: Sequence[np.ndarray] | None = None,
        *,
        patches: Sequence[np.ndarray] | None = None,
        background: Sequence[float] | None = None,
        source_ids: Sequence[str] | None = None,
        source_boxes: np.ndarray | None = None,
        meta: dict | None = None,
    ):
        self.appearance = [np.ascontiguousarray(a, dtype=np.float32) for a in appearance]
        n = len(self.appearance)
        for i, a in enumerate(self.appearance):
            if a.ndim != 2 or a.size == 0:
                raise ValueError(f"library entry {i}: appearance must be a non-empty 2-D array, got shape {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"library entry {i}: appearance has non-finite values")
        if masks is None:
            masks = [(a != 0) if (a != 0).any() else np.ones(a.shape, bool) for a in self.appearance]
        self.masks = [np.ascontiguousarray(m, dtype=bool) for m in masks]
        if len(self.masks) != n or any(m.shape != a.shape for m, a in zip(self.masks, self.appearance)):
            raise ValueError("library masks must match the appearances one to one, same shapes")
        self.patches = None if patches is None else [np.ascontiguousarray(p, dtype=np.float32) for p in patches]
        if self.patches is not None and (
            len(self.patches) != n or any(p.shape != a.shape for p, a in zip(self.patches, self.appearance))
        ):
            raise ValueError("library patches must match the appearances one to one, same shapes")
        self.background = np.zeros(n, np.float32) if background is None else np.asarray(background, np.float32)
        self.source_ids = [""] * n if source_ids is None else [str(s) for s in source_ids]
        if source_boxes is None:
            self.source_boxes = np.zeros((n, 4), np.float32)
        else:
            self.source_boxes = np.asarray(source_boxes, np.float32).reshape(-1, 4)
        if len(self.background) != n or len(self.source_ids) != n or len(self.source_boxes) != n:
            raise ValueError("library background / source_ids / source_boxes must have one row per entry")
        self.meta = dict(meta or {})
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.appearance)

    def __repr__(self) -> str:
        return f"TargetLibrary({len(self)} targets, sizes up to {self.max_patch_size()} px)"

    @property
    def sizes(self) -> np.ndarray:
        """(N, 2) int array of stored (h, w) sizes."""
        return np.asarray([a.shape for a in self.appearance], dtype=np.int64).reshape(-1, 2)

    def max_patch_size(self) -> tuple[int, int]:
        s = self.sizes
        return (int(s[:, 0].max()), int(s[:, 1].max())) if len(s) else (0, 0)

    def resized(self, index: int, max_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Appearance and footprint of entry ``index`` shrunk to fit ``max_size × max_size``.

        Returns:
            ``(B, F)``: ``B`` (h', w') float32 contrast, zero outside ``F``; ``F`` (h', w') bool,
            the pasted target's pixels (never empty). ``(h', w') = fit_size(h, w, max_size)``.
            When the patch already fits, ``B`` and ``F`` are the stored arrays. Otherwise the
            mask is area-averaged, ``F = mask' ≥ 0.5`` (the single most-covered cell when that
            is empty) and ``B`` is the mean contrast of the target pixels in each cell
            (``area(B·M) / area(M)``), so shrinking does not dim the target. Results are
            cached (read-only arrays).
        """
        key = (int(index), int(max_size))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        a, m = self.appearance[index], self.masks[index]
        h, w = a.shape
        nh, nw = fit_size(h, w, max_size)
        if (nh, nw) == (h, w):
            b, f = a * m, m.copy()
        else:
            b, f = area_resample(a, m, nh, nw)
        b = np.ascontiguousarray(b, dtype=np.float32)
        f = np.ascontiguousarray(f, dtype=bool)
        b.flags.writeable = False
        f.flags.writeable = False
        self._cache[key] = (b, f)
        return b, f

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the library to ``path`` (``.npz``) atomically (temp file + ``os.replace``)."""
        path = Path(path)
        shapes = self.sizes.astype(np.int32)

        def flat(arrs, dtype):
            return np.concatenate([a.ravel() for a in arrs]).astype(dtype) if arrs else np.zeros(0, dtype)

        arrays = {
            "format": np.array(LIBRARY_FORMAT),
            "shapes": shapes,
            "appearance": flat(self.appearance, np.float32),
            "mask": flat(self.masks, np.uint8),
            "background": self.background,
            "source_ids": np.array(self.source_ids, dtype=str) if len(self) else np.zeros(0, dtype="<U1"),
            "source_boxes": self.source_boxes,
            "meta": np.array(json.dumps(self.meta)),
        }
        if self.patches is not None:
            arrays["patch"] = flat(self.patches, np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path) -> "TargetLibrary":
        """Read a library written by :meth:`save`.

        Raises:
            DataError: the file is missing, not a library, truncated or inconsistent (names the file).
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "target library file not found (build one with build_target_library)")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(path, f"not a readable target library ({exc.__class__.__name__}: {exc})") from None
        fmt = str(data.get("format", ""))
        if fmt != LIBRARY_FORMAT:
            raise DataError(path, f"not an irdet target library (format {fmt!r}, expected {LIBRARY_FORMAT!r})")
        try:
            shapes = data["shapes"].astype(np.int64).reshape(-1, 2)
            counts = shapes[:, 0] * shapes[:, 1]
            if (shapes <= 0).any():
                raise ValueError("a stored patch has a zero size")
            total = int(counts.sum())
            flat_a, flat_m = data["appearance"], data["mask"]
            flat_p = data.get("patch")
            if flat_a.size != total or flat_m.size != total or (flat_p is not None and flat_p.size != total):
                raise ValueError(f"flat arrays hold {flat_a.size} values, shapes need {total}")
            ends = np.cumsum(counts)
            starts = ends - counts
            app = [flat_a[s:e].reshape(hw) for s, e, hw in zip(starts, ends, shapes)]
            msk = [flat_m[s:e].reshape(hw).astype(bool) for s, e, hw in zip(starts, ends, shapes)]
            pat = None if flat_p is None else [flat_p[s:e].reshape(hw) for s, e, hw in zip(starts, ends, shapes)]
            return cls(
                app,
                msk,
                patches=pat,
                background=data["background"],
                source_ids=[str(s) for s in data["source_ids"]],
                source_boxes=data["source_boxes"],
                meta=json.loads(str(data["meta"])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(path, f"corrupt target library ({exc.__class__.__name__}: {exc})") from None


# ---------------------------------------------------------------------- building
def _box_pixels(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """Pixel rows/cols ``[r0, r1) × [c0, c1)`` covered by a pixel-edge box, clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c0, r0 = max(0, int(np.floor(x1 + 1e-6))), max(0, int(np.floor(y1 + 1e-6)))
    c1, r1 = min(w, int(np.ceil(x2 - 1e-6))), min(h, int(np.ceil(y2 - 1e-6)))
    return r0, r1, c0, c1


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
            r0, r1, c0, c1 = _box_pixels(b, h, w)
            exclude[r0:r1, c0:c1] = True
    else:
        exclude = tmask
    out = []
    for b in boxes:
        counts["boxes"] += 1
        r0, r1, c0, c1 = _box_pixels(b, h, w)
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
        dataset_or_root: a :class:`irdet.data.densesirst.DenseSIRST` (its root and ids are
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
    from irdet.data.densesirst import DenseSIRST

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
