"""The BAG-CP target library: small-target appearances cut from training images (Xiao et al.,
arXiv 2407.20078, §IV-C step 1), stored in one ``.npz`` file.

A :class:`TargetLibrary` holds, for every usable ground-truth box of a split, the target's
**appearance** ``B_box`` of Eq. (1) ``T_new = T_back + B_box · λ · G`` (its signed contrast
over its local background, zero outside its mask) together with its binary footprint, and
the raw grey patch it was cut from, so that BAG-CP (:mod:`irdet.data.bagcp`) and the dataset
synthesis (:mod:`irdet.data.synthesis`) can paste it anywhere. How entries are cut from images
(``B_box``, cropping, dropped entries): :mod:`irdet.data.bagcp.extract`.

Patches are stored at their **original size**. :meth:`TargetLibrary.resized` shrinks a patch
at paste time so that it fits in ``max_size × max_size`` keeping the aspect ratio (area
averaging; never enlarged; each side at least 1 px): paper "resized to dimensions within
5 × 5 pixels".

Storage: one ``.npz`` file (flat arrays plus shapes, no pickle), written atomically.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from irdet.data.io import atomic_write_bytes
from irdet.errors import DataError

__all__ = ["TargetLibrary", "area_resize_matrix", "area_resample", "fit_size", "LIBRARY_FORMAT"]

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
