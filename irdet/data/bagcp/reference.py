"""BAG-CP as the authors' reference code implements it (``data.bagcp.variant: reference``).

The paper (§III-B, §IV-C, Eqs. 1–3) and the code that produced its numbers (GrokCV/BAFE-Net,
``SkyCopyPaste`` in ``deepir/datasets/transforms/transforms.py``, MMDetection) differ in six
ways. irdet's default, :class:`irdet.data.bagcp.transform.BAGCP` (``variant: paper``), follows the
paper; :class:`ReferenceBAGCP` re-implements the reference's procedure so that both can be
trained and measured side by side (``configs/ablations/table3_f_reference.yaml``):

=====================  ============================================  ==========================================
                       paper (irdet default)                         reference (this module)
=====================  ============================================  ==========================================
targets                1–3 regions × 8–12 library targets            a random subset (``k ~ U{0..min(n, 99)}``)
                                                                     of the ``n`` library targets of one random
                                                                     source image
regions                one per region draw, 20×20 px                 one per 5 targets (targets 0, 5, 10, …),
                                                                     25×25 px, shrinking by 3 px per failed
                                                                     search down to 10×10 (then the group is
                                                                     placed target by target); the size found
                                                                     is kept for the image's next regions
size                   shrunk to fit 5×5, aspect kept                kept at its size in the training
                                                                     resolution; only a target ≥ 10 px (either
                                                                     side) is resized, to 7×7 (aspect lost)
Gaussian offset ρ      random sign per axis, ``|ρ| ≤ 0.2``           always toward the top-left: peak at
                                                                     ``(−ρx, −ρy)``, ``ρ ~ U[0, 0.2]``
Gaussian normalisation peak = 1 on a pixel-centre grid               min–max over the box on a
                                                                     ``linspace(−1, 1, n)`` grid (0 at the
                                                                     darkest pixel, 1 at the brightest)
blend                  ``T_back + λ·G·B``, ``B`` the target's        ``T_back + λ·G·P``, ``P`` the raw source
                       contrast over its background, inside its      pixels of the whole box rectangle (the
                       mask                                          source's sky level included)
=====================  ============================================  ==========================================

Common to both: λ ~ U[0.5, 1], σx, σy ~ U[0.3, 0.6], θ (reference: integer degrees in
[−90, 89]), sky-only placement, a clearance of 1 px to every target pixel and earlier paste
(irdet also keeps it from the ground-truth boxes, which on DenseSIRST cover their masks),
boxes / target mask / points appended, values clipped to ``value_range``.

Procedure details read from the reference (and kept): a region window of side ``s`` is
searched by up to 102 random sky pixels taken as its top-left corner (clamped to
``H − s`` / ``W − s``), valid when the window is all sky and holds no target pixel; on failure
``s`` shrinks by 3 (25, 22, …, 10; a side of 7 or less never counts as found) and after the
seventh failed size ``s`` resets to 25 and the group's targets are placed one by one. A target
in a region takes up to 102 uniform positions with its top-left in
``[y0, y0 + s − h) × [x0, x0 + s − w)``; a target without a region, or whose region tries
failed, takes up to 102 random sky pixels as its top-left corner.

Guards where the reference misbehaves (irdet, counted in :attr:`BAGCP.stats`):

* the reference pastes a target whose every try failed at its last try anyway (possibly off
  the sky, over a target, or over the image's edge); here it is **refused and counted**;
* a 1×1 target gives the reference a 0/0 = NaN Gaussian (a saturated pixel); here a box whose
  Gaussian is constant gets ``G ≡ 1``;
* a target under 0.5 px at the training resolution (a zero-width box, which the reference
  annotates as ``[0, 0, 0, 0]`` and never paints) is kept at 1 px.

Left as differences: targets come from irdet's target library (cut tight around their
masks at the original resolution, then scaled as the training resize scales their source
image, bilinear with antialiasing as :func:`torchvision.transforms.v2.functional.resize`;
the ≥ 10 px → 7×7 resize is bilinear without antialiasing, as OpenCV's default), where the
reference cuts the box (one pixel up-left of the target, its ``xmin − 1`` convention) out of
the already resized source image; the pasted value is added to the three channels (the
reference writes channel 0 to all three) and is not truncated to an integer.

Source: GrokCV/BAFE-Net ``SkyCopyPaste`` (read, re-implemented); irdet guards as listed.
"""


from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from irdet.data.bagcp.blend import blend, float_canvas, restore_dtype
from irdet.data.bagcp.gaussian import gaussian_exponent, rotate
from irdet.data.bagcp.library import TargetLibrary
from irdet.data.bagcp.placement import is_clear
from irdet.data.bagcp.sample import image_hw, occupancy, pasted_sample, sky_raster
from irdet.data.bagcp.transform import BAGCP, SECTION_KEYS, BAGCPSettings
from irdet.data.io import image_size
from irdet.errors import ConfigError

__all__ = ["ReferenceBAGCP", "build_reference_bagcp", "reference_gaussian", "reference_size", "source_scales",
           "REFERENCE_CONSTANTS", "REFERENCE_KEYS"]

#: The reference's numbers (``SkyCopyPaste``).
REFERENCE_CONSTANTS = {
    "targets_per_region": 5,  # a new region at targets 0, 5, 10, ...
    "region_size": 25,  # first window side, px
    "region_shrink": 3,  # px less per failed window search
    "region_sizes_tried": 7,  # 25, 22, ..., 10, 7 (7 never counts as found)
    "region_min_found": 8,  # a window side must exceed 7 px to count
    "resize_from": 10,  # a target with a side >= 10 px ...
    "resize_to": 7,  # ... is resized to 7 x 7
    "max_pasted": 100,  # k ~ U{0 .. min(n + 1, 100) - 1}
    "tries": 102,  # random tries per search (the reference's loop bound)
    "lam": (0.5, 1.0),
    "sigma": (0.3, 0.6),
    "rho": (0.0, 0.2),  # peak at (-rho_x, -rho_y): toward the top-left
    "theta": (-90, 90),  # integer degrees, upper bound excluded
}
_C = REFERENCE_CONSTANTS

#: the :class:`~irdet.data.bagcp.transform.BAGCPSettings` the reference variant takes (its other
#: numbers are fixed: :data:`REFERENCE_CONSTANTS`)
REFERENCE_KEYS = ("prob", "seed", "value_range")


def reference_gaussian(h: int, w: int, sigma_x: float, sigma_y: float, rho_x: float, rho_y: float,
                       theta: float) -> np.ndarray:
    """The reference's rotated Gaussian over an (h, w) box (Eqs. 2–3), min–max normalised.

    Grid ``u = linspace(−1, 1, w)``, ``v = linspace(−1, 1, h)`` (first and last pixel at ±1);
    ``[x', y'] = R(θ)·[u + ρx, v + ρy]`` (Eq. 3, :func:`~irdet.data.bagcp.gaussian.rotate`
    about ``μ = (−ρx, −ρy)``), so the peak sits at ``(−ρx, −ρy)``, up-left of the box centre
    for ``ρ ≥ 0``; ``g = exp(−x'²/(2σx²) − y'²/(2σy²))`` (Eq. 2,
    :func:`~irdet.data.bagcp.gaussian.gaussian_exponent`) and ``G = (g − min g) / (max g − min g)``.

    Args:
        h, w: box size in pixels (≥ 1).
        sigma_x, sigma_y: spreads in grid units (reference U[0.3, 0.6]); must be > 0.
        rho_x, rho_y: offsets toward the top-left in grid units (reference U[0, 0.2]).
        theta: rotation in degrees.

    Returns:
        (h, w) float32 in [0, 1], 0 at the darkest pixel and 1 at the brightest; all ones
        when ``g`` is constant over the box (a 1×1 box: the reference's 0/0 = NaN, guarded).

    Source: GrokCV/BAFE-Net ``generate_gaussian_matrix``; the constant-box guard is irdet's.
    """
    u = np.linspace(-1.0, 1.0, int(w))
    v = np.linspace(-1.0, 1.0, int(h))
    xr, yr = rotate(u[None, :], v[:, None], -float(rho_x), -float(rho_y), float(theta))
    g = np.exp(-gaussian_exponent(xr, yr, sigma_x**2, sigma_y**2))
    span = float(g.max() - g.min())
    if not span > 0.0:
        return np.ones((int(h), int(w)), np.float32)
    return ((g - g.min()) / span).astype(np.float32)


def _scaled_size(h: int, w: int, scale: Sequence[float]) -> tuple[int, int]:
    """``(round(h·sy), round(w·sx))`` (halves up), each at least 1 px."""
    return (max(1, int(math.floor(h * float(scale[0]) + 0.5))),
            max(1, int(math.floor(w * float(scale[1]) + 0.5))))


def reference_size(h: int, w: int, scale: Sequence[float] = (1.0, 1.0)) -> tuple[int, int]:
    """Pasted size of an (h, w) library target whose source image the training resize scales
    by ``scale`` = (sy, sx): ``(round(h·sy), round(w·sx))`` (halves up), each at least 1 px; then, when
    either side is ≥ 10 px, 7×7 (the reference's only resize). Source: GrokCV/BAFE-Net
    ``SkyCopyPaste``; the 1-px floor is irdet's guard."""
    nh, nw = _scaled_size(h, w, scale)
    if nh >= _C["resize_from"] or nw >= _C["resize_from"]:
        return _C["resize_to"], _C["resize_to"]
    return nh, nw


def source_scales(library: TargetLibrary, img_size: Sequence[int] | None, keep_ratio: bool = False) -> np.ndarray:
    """Per-entry (sy, sx) scale of the training resize applied to each entry's source image.

    ``img_size`` (H, W) stretches a source of size (h, w) by ``(H / h, W / w)``; with
    ``keep_ratio`` by ``max(H, W) / max(h, w)`` on both axes; ``None`` (native resolution)
    scales by 1. Source sizes are read from the image headers of
    ``library.meta["source_root"]/PNGImages/<source id>.png``.

    Returns:
        (N, 2) float64.

    Raises:
        ConfigError: ``img_size`` is given and the library records no source images.
        DataError: a source image is missing or unreadable (names the file).

    Source: irdet (the reference cuts its targets from sources already resized to 512×512).
    """
    n = len(library)
    if img_size is None or n == 0:
        return np.ones((n, 2), np.float64)
    root = library.meta.get("source_root")
    if not root or any(not s for s in library.source_ids):
        raise ConfigError(
            "bagcp variant reference: the target library records no source images (meta source_root and "
            "source ids), so its targets cannot be scaled as the training resize scales their images; "
            "build the library from a dataset (build_target_library) or train at native resolution (data.img_size: null)"
        )
    H, W = (float(v) for v in img_size)
    sizes: dict[str, tuple[int, int]] = {}
    out = np.empty((n, 2), np.float64)
    for i, sid in enumerate(library.source_ids):
        if sid not in sizes:
            sizes[sid] = image_size(Path(root) / "PNGImages" / f"{sid}.png")
        h, w = sizes[sid]
        out[i] = (max(H, W) / max(h, w),) * 2 if keep_ratio else (H / h, W / w)
    return out


def _bilinear(patch: np.ndarray, size: tuple[int, int], antialias: bool) -> np.ndarray:
    t = torch.from_numpy(np.array(patch, np.float32))[None, None]  # a writable copy
    r = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return r[0, 0].numpy()


class ReferenceBAGCP(BAGCP):
    """BAG-CP as the reference code implements it (see the module docstring for every step).

    A :class:`~irdet.data.bagcp.transform.BAGCP` for its interface, random streams (``seed``,
    workers, per-sample seeds), ``prob``, :attr:`stats` and :attr:`last`; the paper parameters
    of :class:`~irdet.data.bagcp.transform.BAGCPSettings` other than :data:`REFERENCE_KEYS` are
    not taken.

    Args:
        library: a :class:`TargetLibrary` (or its path) with raw ``patches`` (libraries built by
            :func:`~irdet.data.bagcp.extract.build_target_library` have them).
        source_scale: (N, 2) per-entry (sy, sx) scale to the training resolution
            (:func:`source_scales`), one (sy, sx) pair for all entries, or None (= 1: native
            resolution).
        **settings: ``prob`` (probability of applying it to a sample; irdet extension,
            reference 1), ``seed`` (int for a reproducible stream, None to follow
            ``torch.initial_seed()``) and ``value_range`` ((lo, hi) clip range of the blended
            pixels; reference: ≤ 255), defaults as :class:`BAGCPSettings`.

    Sample dict: as :class:`BAGCP` (``sky_mask`` required). ``last["targets"]`` entries hold
    ``index``, ``grid`` ``(x, y, w, h)``, ``box``, ``point``, ``region`` (index or −1), ``lam``,
    ``rho_x``, ``rho_y`` (≥ 0, toward the top-left), ``sigma_x``, ``sigma_y``, ``theta``;
    ``last["regions"]`` the windows ``(x1, y1, x2, y2)``; ``last["source_id"]`` the source image.

    Raises:
        TypeError: a setting other than :data:`REFERENCE_KEYS`.
        ValueError: no library, a library without raw patches, a bad ``source_scale`` shape,
            a sample without ``sky_mask`` or an image that is not (C, H, W).
    """

    def __init__(self, library: TargetLibrary | str | Path, *, source_scale=None, **settings):
        other = sorted(set(settings) - set(REFERENCE_KEYS))
        if other:
            raise TypeError(f"BAG-CP variant reference takes only {list(REFERENCE_KEYS)}, got {other}")
        super().__init__(library, **settings)
        if self.library.patches is None:
            raise ValueError("BAG-CP variant reference pastes raw patches: the target library has none "
                             "(rebuild it with build_target_library)")
        n = len(self.library)
        scale = np.ones((n, 2)) if source_scale is None else np.asarray(source_scale, np.float64)
        if scale.shape == (2,):
            scale = np.tile(scale, (n, 1))
        if scale.shape != (n, 2) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"BAG-CP variant reference: source_scale must be (N={n}, 2) positive, got shape {scale.shape}")
        self.source_scale = scale
        groups: dict[str, list[int]] = {}
        for i, sid in enumerate(self.library.source_ids):
            groups.setdefault(sid, []).append(i)
        self._groups = [np.asarray(v, np.int64) for v in groups.values()]
        self._group_ids = list(groups)
        self._patches: dict[int, np.ndarray] = {}

    def __repr__(self) -> str:
        return (f"ReferenceBAGCP(library={len(self.library)} targets from {len(self._groups)} images, "
                f"prob={self.prob}, seed={self.seed})")

    def patch(self, index: int) -> np.ndarray:
        """Raw grey patch of entry ``index`` at its pasted size (:func:`reference_size`), float32."""
        hit = self._patches.get(index)
        if hit is None:
            raw = self.library.patches[index]
            h, w = raw.shape
            nh, nw = _scaled_size(h, w, self.source_scale[index])
            hit = raw if (nh, nw) == (h, w) else _bilinear(raw, (nh, nw), antialias=True)
            if (nh, nw) != reference_size(h, w, self.source_scale[index]):
                hit = _bilinear(hit, (_C["resize_to"], _C["resize_to"]), antialias=False)
            hit = np.ascontiguousarray(hit, np.float32)
            hit.flags.writeable = False
            self._patches[index] = hit
        return hit

    # ------------------------------------------------------------------ placement
    @staticmethod
    def _window(rng, sky, sky_idx, occ, s: int) -> tuple[int, int] | None:
        """Top-left of an s×s all-sky window holding no taken pixel, from up to 102 random sky
        pixels taken as its top-left (clamped to the image); None when every try fails."""
        H, W = sky.shape
        if s < _C["region_min_found"] or s > H or s > W:
            return None
        for k in rng.integers(0, sky_idx.size, size=_C["tries"]).tolist():
            r, c = divmod(int(sky_idx[k]), W)
            y0, x0 = min(H - s, r), min(W - s, c)
            if sky[y0 : y0 + s, x0 : x0 + s].all() and not occ[y0 : y0 + s, x0 : x0 + s].any():
                return y0, x0
        return None

    @staticmethod
    def _in_region(rng, sky, occ, region, h: int, w: int) -> tuple[int, int] | None:
        """Top-left of an h×w target inside the region ``(y0, x0, s)`` (up to 102 uniform tries
        in ``[y0, y0 + s − h) × [x0, x0 + s − w)``), all sky, 1 px clear; None on failure."""
        y0, x0, s = region
        if s - h < 1 or s - w < 1:
            return None
        ys = y0 + rng.integers(0, s - h, size=_C["tries"])
        xs = x0 + rng.integers(0, s - w, size=_C["tries"])
        for y, x in zip(ys.tolist(), xs.tolist()):
            if sky[y : y + h, x : x + w].all() and is_clear(occ, y, x, h, w, 1):
                return y, x
        return None

    @staticmethod
    def _at_point(rng, sky, sky_idx, occ, h: int, w: int) -> tuple[int, int] | None:
        """Top-left of an h×w target at one of up to 102 random sky pixels, inside the image,
        all sky, 1 px clear; None on failure."""
        H, W = sky.shape
        for k in rng.integers(0, sky_idx.size, size=_C["tries"]).tolist():
            y, x = divmod(int(sky_idx[k]), W)
            if y + h <= H and x + w <= W and sky[y : y + h, x : x + w].all() and is_clear(occ, y, x, h, w, 1):
                return y, x
        return None

    def _place(self, rng, sky, occ, chosen: list) -> list[tuple[int, int, int, int, int, int]]:
        """One region per 5 targets (25 px, shrinking by 3 per failed search), each target in
        its region or else at a random sky pixel; records the regions in :attr:`last` and
        counts them. Returns the placed targets ``(index, y, x, h, w, region id or −1)``."""
        sky_idx = np.flatnonzero(sky)
        placed = []
        size, region = _C["region_size"], None
        for i, index in enumerate(chosen):
            h, w = self.patch(index).shape
            if i % _C["targets_per_region"] == 0:
                self.stats["regions_requested"] += 1
                region = None
                for attempt in range(_C["region_sizes_tried"]):
                    win = self._window(rng, sky, sky_idx, occ, size)
                    if win is not None:
                        region = (win[0], win[1], size)
                        break
                    size = _C["region_size"] if attempt == _C["region_sizes_tried"] - 1 else size - _C["region_shrink"]
                if region is None:
                    self.stats["regions_refused"] += 1
                else:
                    self.stats["regions_placed"] += 1
                    y0, x0, s = region
                    self.last["regions"].append((x0, y0, x0 + s, y0 + s))
            pos = self._in_region(rng, sky, occ, region, h, w) if region is not None else None
            if pos is None:
                pos = self._at_point(rng, sky, sky_idx, occ, h, w)
            if pos is None:
                continue
            y, x = pos
            occ[y : y + h, x : x + w] = True
            placed.append((index, y, x, h, w, len(self.last["regions"]) - 1 if region is not None else -1))
        return placed

    # ------------------------------------------------------------------ main
    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        """Apply the reference's sky copy-paste to one sample dict; returns a new dict."""
        self.stats["samples"] += 1
        self.last = {"regions": [], "targets": [], "source_id": None}
        rng = self._draw_apply(rng, len(self.library) > 0)
        if rng is None:
            return sample
        image = sample["image"]
        H, W = image_hw(image)
        sky = sky_raster(sample, H, W, "BAG-CP variant reference")
        occ, _ = occupancy(sample, H, W)

        g = int(rng.integers(0, len(self._groups)))
        group = self._groups[g]
        self.last["source_id"] = self._group_ids[g]
        k = int(rng.integers(0, min(len(group) + 1, _C["max_pasted"])))
        chosen = rng.choice(group, size=k, replace=False).tolist() if k else []
        self.stats["targets_requested"] += k
        if k == 0 or not sky.any():
            self.stats["targets_refused"] += k
            return sample
        placed = self._place(rng, sky, occ, chosen)
        self.stats["targets_pasted"] += len(placed)
        self.stats["targets_refused"] += k - len(placed)
        if not placed:
            return sample

        work, canvas = float_canvas(image)
        footprints, boxes, points = [], [], []
        for index, y, x, h, w, region_id in placed:
            lam = float(rng.uniform(*_C["lam"]))
            sx, sy = (float(v) for v in rng.uniform(*_C["sigma"], size=2))
            rx, ry = (float(v) for v in rng.uniform(*_C["rho"], size=2))
            theta = float(rng.integers(*_C["theta"]))
            blend(canvas, y, x, self.patch(index), lam, reference_gaussian(h, w, sx, sy, rx, ry, theta),
                  value_range=self.value_range)
            box = (x, y, x + w, y + h)
            point = (x + (w - 1) // 2, y + (h - 1) // 2)
            footprints.append((y, x, np.ones((h, w), bool)))
            boxes.append(box)
            points.append(point)
            self.last["targets"].append({"index": int(index), "grid": (x, y, w, h), "box": box, "point": point,
                                         "region": region_id, "lam": lam, "rho_x": rx, "rho_y": ry,
                                         "sigma_x": sx, "sigma_y": sy, "theta": theta})
        return pasted_sample(sample, restore_dtype(work, image, self.value_range), footprints, boxes, points, H, W)


def build_reference_bagcp(cfg: Mapping, library: TargetLibrary, *, img_size: Sequence[int] | None = None,
                          keep_ratio: bool = False) -> ReferenceBAGCP:
    """:class:`ReferenceBAGCP` from a ``data.bagcp`` dict with ``variant: reference``.

    Args:
        cfg: the dict; besides ``enabled``, ``library``, ``variant`` and the switches (which must
            all be true: the reference implements Table III row f only) it may set ``prob``,
            ``seed`` and ``value_range``. The paper parameters (``regions``, ``region_size``,
            ``max_target_size``, ``lam``, ...) are refused: the reference's numbers are fixed
            (:data:`REFERENCE_CONSTANTS`).
        library: the target library.
        img_size: the training resize (``data.img_size``; None = native resolution), used to
            scale each target as its source image is scaled (:func:`source_scales`).
        keep_ratio: ``data.keep_ratio``.

    Raises:
        ConfigError: a switch off, a paper parameter set, a bad value, or a library that cannot
            be scaled. DataError: a source image that cannot be read.
    """
    off = [k for k in BAGCPSettings.SWITCHES if not cfg.get(k, True)]  # Table III row f: all on
    if off:
        raise ConfigError(f"bagcp variant reference implements Table III row f only: {off} must be true")
    extra = sorted(set(cfg) - set(REFERENCE_KEYS) - set(BAGCPSettings.SWITCHES) - set(SECTION_KEYS))
    if extra:
        raise ConfigError(f"bagcp variant reference uses the reference's fixed numbers; remove {extra} "
                          f"(allowed: {sorted(REFERENCE_KEYS)})")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in REFERENCE_KEYS}
    scale = source_scales(library, img_size, keep_ratio)
    try:
        return ReferenceBAGCP(library, source_scale=scale, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"bagcp: {exc}") from None
