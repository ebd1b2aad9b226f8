"""Target appearance and SNR of the synthetic sequences: BAG-CP library entries, Eqs. (1)–(3), the SNR ring.

* **Appearance** (:func:`target_appearance`): a positive-contrast entry ``B_box`` of the
  :class:`~irdet.data.bagcp.TargetLibrary` (background-subtracted, zero outside the
  target mask) resampled so that its longer side is ``s ~ U{target_size}`` px (shrinking:
  :meth:`TargetLibrary.resized`; enlarging: the same area-weight resampling,
  :func:`~irdet.data.bagcp.area_resample`), times the Gaussian ``G`` of Eqs. (2)–(3)
  (:func:`irdet.data.bagcp.gaussian_weights`, ρ ∈ ±[0, 0.2], σ ∈ [0.3, 0.6], θ ∈ [−90°, 90°],
  peak-normalised), i.e. Eq. (1) ``T_new = T_back + B_box · λ · G`` with λ absorbed in the
  amplitude set by the SNR. The footprint (target mask) is cropped to its bounding box, which
  is the annotation box. The appearance is fixed along the track.
* **SNR** (definition): ``SNR = A / σ_b`` where ``A`` is the target's peak added contrast
  (grey levels, the maximum of the added signal over its pixels) and ``σ_b`` the standard
  deviation of the frame *before the targets are added* (background + sensor noise) in a
  ring around the target's box: the pixels within ``ring[1]`` px of the box but farther than
  ``ring[0]`` px (Chebyshev distance; default 2–6 px), clipped to the frame (:func:`ring_std`);
  ``σ_b`` is floored at 1 grey level. The amplitude is set in every frame from that frame's
  ring, so a track's SNR holds in every frame.

Source: BAG-CP appearance and Eqs. (1)–(3) from the BAFE-Net paper (Xiao et al., arXiv
2407.20078); the SNR definition is irdet's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irdet.data.bagcp import TargetLibrary, area_resample, build_target_library, cached_target_library, gaussian_weights

__all__ = ["library_for", "positive_entries", "target_appearance", "draw_appearance", "ring_std"]


def library_for(root, split: str | Sequence[str], library=None, *, progress: bool = False) -> TargetLibrary:
    """The target library to use: ``library`` (object or ``.npz`` path), else built from
    ``root``/``split`` — cached (:func:`irdet.data.bagcp.cached_target_library`, the
    cache training uses) for a named split, in memory for an explicit id list.

    Raises:
        DataError: a missing/corrupt library file or missing source files.
    """
    if isinstance(library, TargetLibrary):
        return library
    if library is not None:
        return TargetLibrary.load(library)
    if not isinstance(split, str):
        return build_target_library(root, list(split), progress=progress)
    return cached_target_library(root, split, progress=progress)


def positive_entries(lib: TargetLibrary) -> list[int]:
    """Indices of the library entries with a non-empty mask and a positive mean contrast on it."""
    return [k for k, (a, m) in enumerate(zip(lib.appearance, lib.masks)) if m.any() and float(a[m].mean()) > 0]


def target_appearance(lib: TargetLibrary, index: int, s: int, rng: np.random.Generator) -> tuple:
    """Eq. (1)–(3) appearance of library entry ``index`` with longer side ``s`` px.

    Returns:
        ``(shape, footprint, params)``: shape (h, w) float32 with peak 1, zero outside the
        footprint; footprint (h, w) bool, cropped to its bounding box; the Gaussian's
        parameters (``rho``, ``sigma``, ``theta`` in degrees). Shape and footprint are None
        when the weighted entry has no positive pixel.
    """
    a, m = lib.appearance[index], lib.masks[index]
    h0, w0 = a.shape
    if s <= max(h0, w0):
        b, f = lib.resized(index, s)
    else:  # enlarge: the same area-weight resampling as TargetLibrary.resized
        k = s / max(h0, w0)
        nh, nw = max(1, min(s, int(round(h0 * k)))), max(1, min(s, int(round(w0 * k))))
        b, f = area_resample(a, m, nh, nw)
    h, w = b.shape
    rho = rng.uniform(0.0, 0.2, 2) * rng.choice([-1.0, 1.0], 2)
    sig = rng.uniform(0.3, 0.6, 2)
    theta = rng.uniform(-90.0, 90.0)
    g = gaussian_weights(h, w, rho[0], rho[1], sig[0], sig[1], theta)
    shape = np.where(f, b * g, 0.0)
    ys, xs = np.nonzero(f)
    r0, r1, c0, c1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    shape, f = shape[r0:r1, c0:c1], f[r0:r1, c0:c1]
    peak = float(shape.max())
    params = {"rho": [float(rho[0]), float(rho[1])], "sigma": [float(sig[0]), float(sig[1])], "theta": float(theta)}
    if peak <= 0:
        return None, None, params
    return (shape / peak).astype(np.float32), f.copy(), params


def draw_appearance(rng: np.random.Generator, lib: TargetLibrary, lib_pool: list, target_size) -> tuple | None:
    """A target appearance from the split's library entries ``lib_pool`` (10 tries).

    Returns:
        ``(shape, footprint, gaussian params, library index, nominal size in px)``, or None
        when every try gave an empty appearance.
    """
    for _ in range(10):
        entry = int(lib_pool[rng.integers(len(lib_pool))])
        s_px = int(rng.integers(target_size[0], target_size[1] + 1))
        shape, foot, gparams = target_appearance(lib, entry, s_px, rng)
        if shape is not None:
            return shape, foot, gparams, entry, s_px
    return None


def ring_std(frame: np.ndarray, r: int, c: int, h: int, w: int, ring: tuple[int, int]) -> float:
    """Standard deviation (grey levels) of the (H, W) ``frame`` in the ring around the box with
    top-left (r, c) and size (h, w): Chebyshev distance in (``ring[0]``, ``ring[1]``] px from
    the box, clipped to the frame; 0 with fewer than 2 pixels."""
    H, W = frame.shape
    ri, ro = ring
    R0, R1, C0, C1 = max(0, r - ro), min(H, r + h + ro), max(0, c - ro), min(W, c + w + ro)
    sel = np.ones((R1 - R0, C1 - C0), bool)
    sel[max(0, r - ri - R0) : max(0, r + h + ri - R0), max(0, c - ri - C0) : max(0, c + w + ri - C0)] = False
    vals = frame[R0:R1, C0:C1][sel]
    return float(vals.std()) if vals.size >= 2 else 0.0
