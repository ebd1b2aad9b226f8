"""BAG-CP: Background-Aware Gaussian Copy-Paste (paper §III-B, §IV-C, Eqs. 1–3 of Xiao et al., arXiv 2407.20078).

:class:`BAGCP` pastes small targets from a :class:`~irdet.data.target_library.TargetLibrary`
into a training sample, in clusters, in the sky only, blended with a rotated Gaussian. It is
applied to the sample dict **after** resizing (training pipeline: read → Resize 512×512 →
BAG-CP → horizontal flip → pad) and works on images of any size (synthesis pastes in the
original pixels, :mod:`irdet.data.synthesis`).

Procedure for one sample (paper numbers are the defaults)
---------------------------------------------------------
1. Draw ``n ~ U{regions}`` (1–3) dense regions and, per region, ``k ~ U{targets_per_region}``
   (8–12) targets; each target is a uniformly drawn library entry shrunk to fit
   ``max_target_size × max_target_size`` (5×5) px keeping its aspect ratio (never enlarged).
2. ``cluster=True``: each region is a ``region_size × region_size`` (20×20) window drawn
   uniformly among the windows that lie entirely in sky (``sky_mask == 1``; with
   ``background_aware=False`` anywhere in the image), that overlap no ground-truth box,
   and that stay ``max(gap)`` px away from the regions already drawn. Its
   targets are then placed one by one, uniformly among the positions **inside the window**
   where the target's box keeps a clearance of ``g ~ U{gap}`` (1–2) px from every
   ground-truth box / target pixel and every target pasted before; with
   ``tight_spacing=True`` (default) each target after the first of its region is moreover
   drawn among the positions within ``max(gap)`` (2) px of a target already in the region
   when there are any — the literal "pasted with a spacing of 1 to 2 pixels between them":
   every target has a neighbour 1–2 px away, clusters are compact and more of the 8–12
   targets fit (a 20×20 window holds at most nine 5×5 boxes 1 px apart; targets that do
   not fit are refused and counted). ``tight_spacing=False`` keeps only the minimum
   clearance (as the reference does).
   ``cluster=False`` (Table III rows b, d): the same number of targets, each placed
   independently and uniformly anywhere in the image (in sky when ``background_aware``),
   with the same clearance rule.
3. Blending, Eq. (1): ``T_new = T_back + B_box · λ · G`` with ``λ ~ U[0.5, 1]`` on the target's
   pixels, added equally to the three channels and clipped to ``value_range`` ([0, 255]).
   ``B_box`` is the target's contrast over its source background (see
   :mod:`irdet.data.target_library`), zero outside its mask, so only the target's pixels
   change. ``G`` is :func:`gaussian_weights` (Eqs. 2–3) with ``ρx, ρy ~ U[0, 0.2]`` (each
   with a random sign, see below), ``σx, σy ~ U[0.3, 0.6]``, ``θ ~ U[−90°, 90°]``.
   ``gaussian=False`` ("no Gaussian", Table III rows b, c): ``λ ≡ 1`` and ``G ≡ 1``, i.e. a
   hard paste of the target's contrast: ``T_new = T_back + B_box``.
4. Annotations: each pasted target appends a box (pixel-edge, tight around its pasted
   pixels, optionally widened by ``box_margin``), a label 0, its pixels to ``target_mask`` (when the sample has one) and a point
   (when the sample has ``points``) at the pasted pixel nearest to the box centre (pixel-
   index convention ``(col, row)`` of :mod:`irdet.data.io`). The sky mask is unchanged.
   Appended boxes follow the sample's own, whose count is recorded as ``num_gt_boxes`` (used by
   the ``crop_on: gt`` training crop, an irdet extension).

Table III switches: (a) ``copy_paste=False`` (identity); (b) copy-paste only; (c) +cluster;
(d) +gaussian; (e) cluster+gaussian; (f) all four (default).

The authors' code differs from this reading in six ways; it is available as
``data.bagcp.variant: reference`` (:mod:`irdet.data.bagcp_reference`, :func:`build_bagcp`).

Decisions where the paper is silent (irdet)
-------------------------------------------
* Sign of the Gaussian offset: the paper gives ``ρ ∈ [0, 0.2]`` and no direction; a
  non-negative offset on fixed axes would always move the peak toward one corner (the
  reference always moves it toward the top-left). irdet draws an independent random sign
  per axis, so the peak moves by up to ``0.2·w`` / ``0.2·h`` px in any direction.
* Box grid: pixel centres of an (h, w) box mapped to ``u = (2j + 1)/w − 1 ∈ (−1, 1)``
  (``v`` alike), so a 1-px box samples the centre ``u = 0``; the pixel offset ``ρx·w`` is
  ``2ρx`` in these units; ``σ`` is in these units; the rotation (Eq. 3) is about the
  offset centre ``μ``.
* ``gaussian_peak_norm=True`` (default): ``G`` is divided by its maximum over the box's
  pixels, so the brightest pasted pixel gets exactly ``λ·B`` and λ alone sets the
  brightness (Eq. 2 peaks at 1 at its continuous centre, which a 1–5 px grid rarely samples:
  an unnormalised 2×2 box would be dimmed to ~30 %). Computed in log space: never 0/0, no NaN
  even for a 1×1 box or ``σ → 0`` (σ is floored at 1e-6). The reference min–max normalises
  instead (0/0 = NaN for 1-px boxes, zero weight on the darkest corner).
* A region that cannot be placed (too little sky, image smaller than a region, the image
  crowded with targets) or a target that does not fit is **refused and counted** in
  :attr:`BAGCP.stats`, never silently lost and never forced outside the sky.

Random streams: ``seed`` given → reproducible run: the main process draws from
``SeedSequence(seed)``; inside a ``DataLoader`` worker the stream is derived from
``(seed, torch.initial_seed())`` — PyTorch gives every worker a distinct initial seed (base
seed + worker id, base seed re-drawn at every epoch), so workers draw distinct streams, and
a seeded DataLoader (``generator=``) reproduces them. ``seed=None`` → the stream follows
``torch.initial_seed()`` everywhere (``torch.manual_seed`` / ``lightning.seed_everything``
control it). Inside a sample of :class:`irdet.data.sample_stream.SeededSamples` (irdet
training) a fresh stream is derived for every sample, in the main process too, from the
sample's own seed ``torch.initial_seed()`` (and ``seed`` when given): the same sample of the
same epoch gets the same pastes with any number of workers, and after a resume. The generator is re-derived whenever
``torch.initial_seed()`` changes.
``__call__(sample, rng=...)`` uses an explicit ``numpy.random.Generator`` instead (synthesis).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from irdet.data.sample_stream import in_seeded_sample
from irdet.data.target_library import TargetLibrary
from irdet.errors import ConfigError

__all__ = ["BAGCP", "build_bagcp", "gaussian_weights", "gaussian_weights_batch", "STAT_KEYS"]

#: Counters kept in :attr:`BAGCP.stats`.
STAT_KEYS = (
    "samples",  # calls
    "samples_skipped",  # calls left unchanged (copy_paste off, prob roll, empty library)
    "regions_requested",  # cluster mode: regions drawn
    "regions_placed",
    "regions_refused",  # no valid window (too little sky, image too small, crowded)
    "targets_requested",  # targets drawn (refused regions' targets included)
    "targets_pasted",
    "targets_refused",  # = requested - pasted (refused regions + targets that did not fit)
)

_FAST_TRIES = 48  # random candidates tried before an exhaustive search


def gaussian_weights(
    h: int,
    w: int,
    rho_x: float = 0.0,
    rho_y: float = 0.0,
    sigma_x: float = 0.45,
    sigma_y: float = 0.45,
    theta: float = 0.0,
    *,
    peak_norm: bool = True,
) -> np.ndarray:
    """Rotated anisotropic Gaussian over an (h, w) box, Eqs. (2)–(3).

    ``G = exp(−x'²/(2σx²) − y'²/(2σy²))`` with ``[x', y'] = R(θ)·[u − μx, v − μy]``, where
    ``u = (2j + 1)/w − 1`` and ``v = (2i + 1)/h − 1`` are the pixel centres on the box grid
    normalised to [−1, 1] and ``μ = (2ρx, 2ρy)`` is the centre offset (``ρx·w``, ``ρy·h`` px).

    Args:
        h, w: box size in pixels (≥ 1).
        rho_x, rho_y: signed relative centre offsets (paper: |ρ| ≤ 0.2).
        sigma_x, sigma_y: spreads in normalised box units (paper 0.3–0.6; floored at 1e-6).
        theta: rotation in degrees (paper −90..90).
        peak_norm: divide by the maximum over the pixels (see module docstring).

    Returns:
        (h, w) float32 in (0, 1] with ``peak_norm`` (maximum exactly 1), else in [0, 1].
        Never NaN.
    """
    u = (2.0 * np.arange(w) + 1.0) / w - 1.0
    v = (2.0 * np.arange(h) + 1.0) / h - 1.0
    dx = u[None, :] - 2.0 * rho_x
    dy = v[:, None] - 2.0 * rho_y
    t = math.radians(theta)
    c, s = math.cos(t), math.sin(t)
    xr = c * dx - s * dy
    yr = s * dx + c * dy
    sx, sy = max(float(sigma_x), 1e-6), max(float(sigma_y), 1e-6)
    q = xr * xr / (2.0 * sx * sx) + yr * yr / (2.0 * sy * sy)
    if peak_norm:
        q = q - q.min()
    return np.exp(-q).astype(np.float32)


def gaussian_weights_batch(
    h: np.ndarray,
    w: np.ndarray,
    rho_x: np.ndarray,
    rho_y: np.ndarray,
    sigma_x: np.ndarray,
    sigma_y: np.ndarray,
    theta: np.ndarray,
    *,
    size: int,
    peak_norm: bool = True,
) -> np.ndarray:
    """:func:`gaussian_weights` for n boxes at once: (n, size, size) float32, box ``i`` in
    ``[i, :h[i], :w[i]]`` (the rest is 0). Same formula and guards, vectorised."""
    h = np.asarray(h, np.float64)[:, None, None]
    w = np.asarray(w, np.float64)[:, None, None]
    k = np.arange(size, dtype=np.float64)
    u = (2.0 * k[None, None, :] + 1.0) / w - 1.0  # (n, 1, size)
    v = (2.0 * k[None, :, None] + 1.0) / h - 1.0  # (n, size, 1)
    dx = u - 2.0 * np.asarray(rho_x, np.float64)[:, None, None]
    dy = v - 2.0 * np.asarray(rho_y, np.float64)[:, None, None]
    t = np.radians(np.asarray(theta, np.float64))[:, None, None]
    c, s = np.cos(t), np.sin(t)
    xr = c * dx - s * dy
    yr = s * dx + c * dy
    sx = np.maximum(np.asarray(sigma_x, np.float64), 1e-6)[:, None, None]
    sy = np.maximum(np.asarray(sigma_y, np.float64), 1e-6)[:, None, None]
    q = xr * xr / (2.0 * sx * sx) + yr * yr / (2.0 * sy * sy)
    inside = (k[None, :, None] < h) & (k[None, None, :] < w)
    q = np.where(inside, q, np.inf)
    if peak_norm:
        q = q - q.min(axis=(1, 2), keepdims=True)
    return np.exp(-q).astype(np.float32)


def _range(name: str, value, *, integer: bool = False, lo: float | None = None) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"BAG-CP {name} must be a (min, max) pair, got {value!r}") from None
    if integer:
        if int(a) != a or int(b) != b:
            raise ValueError(f"BAG-CP {name} must be integers, got {value!r}")
        a, b = int(a), int(b)
    else:
        a, b = float(a), float(b)
    if not (a <= b) or (lo is not None and a < lo):
        raise ValueError(f"BAG-CP {name} must satisfy {'' if lo is None else f'{lo} <= '}min <= max, got {value!r}")
    return a, b



def _image_hw(image: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a (C, H, W) image; ValueError for any other shape."""
    if image.ndim != 3:
        raise ValueError(f"BAG-CP expects an image (C, H, W), got shape {tuple(image.shape)}")
    return int(image.shape[-2]), int(image.shape[-1])


def _occupancy(sample: dict, H: int, W: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Pixels a paste must not cover: (H, W) bool of the sample's target-mask pixels and the
    pixel cells its boxes touch, and those boxes' cells as ``(r0, r1, c0, c1)`` (end-exclusive;
    boxes with no whole cell in the image left out)."""
    if "target_mask" in sample:
        occ = sample["target_mask"].as_subclass(torch.Tensor).numpy().reshape(H, W) > 0
    else:
        occ = np.zeros((H, W), bool)
    rects = []
    if "boxes" in sample and len(sample["boxes"]):
        for x1, y1, x2, y2 in _to_xyxy(sample["boxes"]).tolist():
            c0, r0 = max(0, math.floor(x1 + 1e-6)), max(0, math.floor(y1 + 1e-6))
            c1, r1 = min(W, math.ceil(x2 - 1e-6)), min(H, math.ceil(y2 - 1e-6))
            if c1 > c0 and r1 > r0:
                occ[r0:r1, c0:c1] = True
                rects.append((r0, r1, c0, c1))
    return occ, rects


class BAGCP:
    """Background-Aware Gaussian Copy-Paste transform over irdet sample dicts.

    Args:
        library: a :class:`TargetLibrary` or the path of a saved one (may be None only when
            ``copy_paste=False``).
        copy_paste: master switch; False → identity (Table III row a).
        cluster: paste in dense ``region_size`` windows (True) or independently (False).
        gaussian: Eq. (1) with random λ and Gaussian G (True) or hard paste λ ≡ G ≡ 1 (False).
        background_aware: place only in sky (``sample["sky_mask"] == 1``); False ignores the
            sky mask entirely (non-sky placements happen).
        regions: (min, max) number of dense regions per image (paper 1–3).
        region_size: region side in pixels (paper 20).
        targets_per_region: (min, max) targets per region (paper 8–12).
        max_target_size: pasted targets fit in this many pixels square (paper 5).
        gap: (min, max) clearance in pixels between a pasted box and any other box (paper 1–2).
        lam: (min, max) of λ, Eq. (1) (paper 0.5–1).
        rho: (min, max) of |ρx|, |ρy|, Eq. (2) (paper 0–0.2; sign random, see module docstring).
        sigma: (min, max) of σx, σy in normalised box units, Eq. (2) (paper 0.3–0.6).
        theta: (min, max) rotation in degrees, Eq. (3) (paper −90–90).
        prob: probability of applying BAG-CP to a sample (irdet extension; paper 1).
        seed: int for a reproducible stream, None to follow ``torch.initial_seed()``.
        region_sky_fraction: fraction of a region window that must be sky (irdet extension;
            default 1.0 = entirely in sky). Targets are always entirely in sky when
            ``background_aware``.
        gaussian_peak_norm: normalise G to a maximum of 1 over the box pixels (irdet, default).
        tight_spacing: in cluster mode, place each target after the first of its region
            within ``max(gap)`` px of a target already in the region when possible (the
            literal "1 to 2 pixels between them"); False = only the minimum clearance
            (reference-like, looser clusters, more targets refused). See module docstring.
        box_margin: (left, top, right, bottom) pixels added to each pasted box (clipped to
            the image). Default 0: boxes tight around the pasted pixels, which is also the
            style of DenseSIRST's boxes as :func:`irdet.data.io.read_voc_xml` reads them
            (tight around their target masks for 13,634 of 13,655 boxes). irdet extension
            to match another dataset's annotation style.
        value_range: (lo, hi) clip range of Eq. (1) (images in [0, 255]).

    Sample dict (in and out): ``image`` tv_tensors.Image (3, H, W) float (uint8 also accepted,
    rounded back), ``boxes`` BoundingBoxes XYXY pixel-edge, ``labels`` int64, ``sky_mask``
    Mask uint8 (1 sky / 0 non-sky / 255 ignore; required when ``background_aware``),
    optional ``target_mask`` Mask uint8 0/1 and ``points`` KeyPoints (M, 2); other keys pass
    through. A new dict is returned (the input tensors are not modified); types, dtypes and
    ``canvas_size`` are kept.

    Attributes:
        stats: cumulative counters (:data:`STAT_KEYS`) of this instance — per process: in
            DataLoader workers each worker's copy counts its own samples.
        last: details of the last call: ``regions`` (list of pixel-edge windows
            ``(x1, y1, x2, y2)``), ``targets`` (list of dicts: ``index`` (library entry),
            ``grid`` ``(x, y, w, h)`` pasted box grid, ``box`` annotation box, ``point``,
            ``region`` (index or -1), ``gap``, ``lam``, ``rho_x``, ``rho_y``, ``sigma_x``,
            ``sigma_y``, ``theta``).

    Raises:
        ValueError: bad parameter ranges, a missing ``sky_mask`` with ``background_aware``,
            or an image that is not (C, H, W).
    """

    def __init__(
        self,
        library: TargetLibrary | str | Path | None,
        *,
        copy_paste: bool = True,
        cluster: bool = True,
        gaussian: bool = True,
        background_aware: bool = True,
        regions: Sequence[int] = (1, 3),
        region_size: int = 20,
        targets_per_region: Sequence[int] = (8, 12),
        max_target_size: int = 5,
        gap: Sequence[int] = (1, 2),
        lam: Sequence[float] = (0.5, 1.0),
        rho: Sequence[float] = (0.0, 0.2),
        sigma: Sequence[float] = (0.3, 0.6),
        theta: Sequence[float] = (-90.0, 90.0),
        prob: float = 1.0,
        seed: int | None = None,
        region_sky_fraction: float = 1.0,
        gaussian_peak_norm: bool = True,
        tight_spacing: bool = True,
        box_margin: Sequence[int] = (0, 0, 0, 0),
        value_range: Sequence[float] = (0.0, 255.0),
    ):
        if isinstance(library, (str, Path)):
            library = TargetLibrary.load(library)
        if library is None and copy_paste:
            raise ValueError("BAG-CP needs a target library when copy_paste=True")
        self.library = library
        self.copy_paste = bool(copy_paste)
        self.cluster = bool(cluster)
        self.gaussian = bool(gaussian)
        self.background_aware = bool(background_aware)
        self.regions = _range("regions", regions, integer=True, lo=0)
        self.targets_per_region = _range("targets_per_region", targets_per_region, integer=True, lo=0)
        self.gap = _range("gap", gap, integer=True, lo=0)
        self.lam = _range("lam", lam)
        self.rho = _range("rho", rho, lo=0.0)
        self.sigma = _range("sigma", sigma, lo=0.0)
        self.theta = _range("theta", theta)
        self.value_range = _range("value_range", value_range)
        if int(region_size) != region_size or region_size < 1:
            raise ValueError(f"BAG-CP region_size must be a positive integer, got {region_size!r}")
        if int(max_target_size) != max_target_size or max_target_size < 1:
            raise ValueError(f"BAG-CP max_target_size must be a positive integer, got {max_target_size!r}")
        self.region_size = int(region_size)
        self.max_target_size = int(max_target_size)
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"BAG-CP prob must be in [0, 1], got {prob!r}")
        self.prob = float(prob)
        if not 0.0 < float(region_sky_fraction) <= 1.0:
            raise ValueError(f"BAG-CP region_sky_fraction must be in (0, 1], got {region_sky_fraction!r}")
        self.region_sky_fraction = float(region_sky_fraction)
        self.gaussian_peak_norm = bool(gaussian_peak_norm)
        self.tight_spacing = bool(tight_spacing)
        try:
            bm = tuple(int(v) for v in box_margin)
        except (TypeError, ValueError):
            bm = ()
        if len(bm) != 4 or min(bm) < 0:
            raise ValueError(
                f"BAG-CP box_margin must be 4 non-negative integers (left, top, right, bottom), got {box_margin!r}"
            )
        self.box_margin = bm
        self.seed = None if seed is None else int(seed)
        self._rng: np.random.Generator | None = None
        self._rng_key: Any = object()
        self.stats: dict[str, int] = {k: 0 for k in STAT_KEYS}
        self.last: dict = {"regions": [], "targets": []}
        self._entries: dict[int, tuple] = {}

    def __repr__(self) -> str:
        return (
            f"BAGCP(copy_paste={self.copy_paste}, cluster={self.cluster}, gaussian={self.gaussian}, "
            f"background_aware={self.background_aware}, regions={self.regions}, region_size={self.region_size}, "
            f"targets_per_region={self.targets_per_region}, max_target_size={self.max_target_size}, gap={self.gap}, "
            f"lam={self.lam}, rho={self.rho}, sigma={self.sigma}, theta={self.theta}, prob={self.prob}, "
            f"seed={self.seed}, library={len(self.library) if self.library is not None else None})"
        )

    def reset_stats(self) -> None:
        self.stats = {k: 0 for k in STAT_KEYS}

    # ------------------------------------------------------------------ randomness
    def _draw_apply(self, rng: np.random.Generator | None, available: bool) -> np.random.Generator | None:
        """The generator for this sample, or None (counted in ``stats["samples_skipped"]``) when
        nothing can be pasted (``available`` False) or the draw against ``prob`` skips it."""
        if not available:
            self.stats["samples_skipped"] += 1
            return None
        rng = rng if rng is not None else self._generator()
        if self.prob < 1.0 and rng.random() >= self.prob:
            self.stats["samples_skipped"] += 1
            return None
        return rng

    def _generator(self) -> np.random.Generator:
        seeded = in_seeded_sample()  # a SeededSamples item: a fresh stream of the sample's own seed
        per_sample = seeded or torch.utils.data.get_worker_info() is not None
        key = torch.initial_seed() if (self.seed is None or per_sample) else None
        if self._rng is None or key != self._rng_key or seeded:
            if self.seed is None:
                entropy: Any = key
            elif key is None:
                entropy = self.seed
            else:
                entropy = [self.seed, key]
            self._rng = np.random.default_rng(np.random.SeedSequence(entropy))
            self._rng_key = key
        return self._rng

    # ------------------------------------------------------------------ main
    def _entry(self, index: int) -> tuple:
        """Resized appearance of a library entry plus its cached footprint geometry."""
        hit = self._entries.get(index)
        if hit is None:
            b, f = self.library.resized(index, self.max_target_size)
            ys, xs = np.nonzero(f)
            r0, r1, c0, c1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
            cy, cx = (r0 + r1 - 1) / 2.0, (c0 + c1 - 1) / 2.0
            j = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))  # pasted pixel nearest the box centre
            hit = (b, f, b.shape[0], b.shape[1], (c0, r0, c1, r1), (float(xs[j]), float(ys[j])))
            self._entries[index] = hit
        return hit

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        """Apply BAG-CP to one sample dict (see the class docstring); returns a new dict."""
        self.stats["samples"] += 1
        self.last = {"regions": [], "targets": []}
        rng = self._draw_apply(rng, self.copy_paste and self.library is not None and len(self.library) > 0)
        if rng is None:
            return sample
        image = sample["image"]
        H, W = _image_hw(image)
        sky = None
        if self.background_aware:
            if "sky_mask" not in sample:
                raise ValueError("BAG-CP with background_aware=True needs sample['sky_mask']")
            sky = sample["sky_mask"].as_subclass(torch.Tensor).numpy().reshape(H, W) == 1

        # occupancy: ground-truth boxes (and target pixels), then pasted boxes
        occ, gt_rects = _occupancy(sample, H, W)

        # draws
        n_regions = int(rng.integers(self.regions[0], self.regions[1] + 1))
        per_region = rng.integers(self.targets_per_region[0], self.targets_per_region[1] + 1, size=n_regions)
        n_total = int(per_region.sum())
        self.stats["targets_requested"] += n_total
        if n_total == 0:
            return sample
        lib_idx = rng.integers(0, len(self.library), size=n_total).tolist()
        gaps = rng.integers(self.gap[0], self.gap[1] + 1, size=n_total).tolist()
        if self.gaussian:
            lams = rng.uniform(self.lam[0], self.lam[1], size=n_total)
            rhos = rng.uniform(self.rho[0], self.rho[1], size=(n_total, 2)) * rng.choice((-1.0, 1.0), size=(n_total, 2))
            sigmas = rng.uniform(self.sigma[0], self.sigma[1], size=(n_total, 2))
            thetas = rng.uniform(self.theta[0], self.theta[1], size=n_total)

        placer = _Placer(occ, sky, rng)
        placed = []  # (t, region_index, y, x)
        t = 0
        if self.cluster:
            R = self.region_size
            min_sky = int(math.ceil(self.region_sky_fraction * R * R - 1e-9))
            near_gap = self.gap[1] if self.tight_spacing else 0
            for k in range(n_regions):
                self.stats["regions_requested"] += 1
                win = placer.pick_window(R, min_sky, gt_rects, self.gap[1])
                n_k = int(per_region[k])
                if win is None:
                    self.stats["regions_refused"] += 1
                    t += n_k
                    continue
                self.stats["regions_placed"] += 1
                y0, x0 = win
                placer.open_region(y0, x0, R, max(self.gap[1], near_gap + 1))
                self.last["regions"].append((x0, y0, x0 + R, y0 + R))
                region_id = len(self.last["regions"]) - 1
                for _ in range(n_k):
                    _, _, h, w, _, _ = self._entry(lib_idx[t])
                    pos = placer.place_in_region(h, w, gaps[t], near_gap)
                    if pos is not None:
                        placed.append((t, region_id, pos[0], pos[1]))
                    t += 1
        else:
            for _ in range(n_total):
                _, _, h, w, _, _ = self._entry(lib_idx[t])
                pos = placer.place_anywhere(h, w, gaps[t])
                if pos is not None:
                    placed.append((t, -1, pos[0], pos[1]))
                t += 1
        self.stats["targets_pasted"] += len(placed)
        self.stats["targets_refused"] += n_total - len(placed)
        if not placed:
            return sample

        # Gaussians of all pasted targets at once (Eqs. 2-3), on a common M×M padded grid
        if self.gaussian:
            sel = np.asarray([p[0] for p in placed])
            hw = np.asarray([self._entry(lib_idx[p[0]])[2:4] for p in placed], np.float64)
            gauss = gaussian_weights_batch(
                hw[:, 0], hw[:, 1], rhos[sel, 0], rhos[sel, 1], sigmas[sel, 0], sigmas[sel, 1], thetas[sel],
                size=self.max_target_size, peak_norm=self.gaussian_peak_norm,
            )

        # paste (Eq. 1)
        out = dict(sample)
        out["num_gt_boxes"] = int(sample.get("num_gt_boxes", len(sample.get("boxes", ()))))
        img_t = image.as_subclass(torch.Tensor)
        is_float = img_t.is_floating_point()
        work = img_t.detach().clone() if is_float else img_t.to(torch.float32)
        arr = work.numpy()
        lo, hi = self.value_range
        tm = None
        if "target_mask" in sample:
            tm_t = sample["target_mask"].as_subclass(torch.Tensor).clone()
            tm = tm_t.numpy().reshape(H, W)
        new_boxes, new_points = [], []
        for n, (t, region_id, y, x) in enumerate(placed):
            b, f, h, w, (c0, r0, c1, r1), (px, py) = self._entry(lib_idx[t])
            rec = {"index": lib_idx[t], "grid": (x, y, w, h), "region": region_id, "gap": gaps[t]}
            if self.gaussian:
                lam = float(lams[t])
                delta = b * (lam * gauss[n, :h, :w])
                rec.update(
                    lam=lam, rho_x=float(rhos[t, 0]), rho_y=float(rhos[t, 1]), sigma_x=float(sigmas[t, 0]),
                    sigma_y=float(sigmas[t, 1]), theta=float(thetas[t]),
                )
            else:
                delta = b
                rec.update(lam=1.0, rho_x=0.0, rho_y=0.0, sigma_x=math.inf, sigma_y=math.inf, theta=0.0)
            patch = arr[:, y : y + h, x : x + w]
            vals = patch[:, f]
            vals += delta[f]
            np.clip(vals, lo, hi, out=vals)
            patch[:, f] = vals
            if tm is not None:
                tm[y : y + h, x : x + w][f] = 1
            ml, mt, mr, mb = self.box_margin
            box = (max(0, x + c0 - ml), max(0, y + r0 - mt), min(W, x + c1 + mr), min(H, y + r1 + mb))
            point = (x + px, y + py)
            rec.update(box=box, point=point)
            self.last["targets"].append(rec)
            new_boxes.append(box)
            new_points.append(point)

        if not is_float:
            work = work.round_().clamp_(lo, hi).to(img_t.dtype)
        out["image"] = tv_tensors.wrap(work, like=image) if isinstance(image, tv_tensors.TVTensor) else work
        if tm is not None:
            out["target_mask"] = tv_tensors.Mask(tm_t) if isinstance(sample["target_mask"], tv_tensors.Mask) else tm_t
        _append_pasted(out, sample, new_boxes, new_points, H, W)
        return out


def _append_pasted(out: dict, sample: dict, boxes: list, points: list, H: int, W: int) -> None:
    """Append pasted targets to ``out``: ``boxes`` (x1, y1, x2, y2) pixel edges after the
    sample's boxes (in their format; a new XYXY ``BoundingBoxes`` of canvas (H, W) when the
    sample has none), label 0 each, and their ``points`` (x, y) when the sample has points."""
    nb = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if "boxes" in sample:
        old = sample["boxes"]
        nb = _from_xyxy(nb, old).to(old.dtype)
        out["boxes"] = tv_tensors.wrap(torch.cat([old.as_subclass(torch.Tensor), nb]), like=old)
    else:
        out["boxes"] = tv_tensors.BoundingBoxes(nb, format="XYXY", canvas_size=(H, W))
    old_labels = sample.get("labels")
    nl = torch.zeros(len(boxes), dtype=torch.int64)
    out["labels"] = nl if old_labels is None else torch.cat([old_labels.as_subclass(torch.Tensor), nl.to(old_labels.dtype)])
    if "points" in sample:
        oldp = sample["points"]
        npnt = torch.tensor(points, dtype=oldp.dtype).reshape(-1, 2)
        out["points"] = tv_tensors.wrap(torch.cat([oldp.as_subclass(torch.Tensor).reshape(-1, 2), npnt]), like=oldp)


def _to_xyxy(boxes) -> torch.Tensor:
    fmt = getattr(boxes, "format", None)
    t = boxes.as_subclass(torch.Tensor).reshape(-1, 4)
    if fmt is None or fmt == tv_tensors.BoundingBoxFormat.XYXY:
        return t
    from torchvision.ops import box_convert

    return box_convert(t, fmt.name.lower(), "xyxy")


def _from_xyxy(boxes: torch.Tensor, like) -> torch.Tensor:
    fmt = getattr(like, "format", None)
    if fmt is None or fmt == tv_tensors.BoundingBoxFormat.XYXY:
        return boxes
    from torchvision.ops import box_convert

    return box_convert(boxes, "xyxy", fmt.name.lower())


class _Placer:
    """Placement of regions and targets on an occupancy raster (all coordinates in pixels)."""

    def __init__(self, occ: np.ndarray, sky: np.ndarray | None, rng: np.random.Generator):
        self.occ = occ  # True = taken (ground-truth boxes / target pixels / pasted boxes)
        self.sky = sky  # None = anywhere allowed
        self.rng = rng
        self.H, self.W = occ.shape
        self.blocked: list[tuple[int, int, int]] = []  # regions drawn: (y0, x0, R)
        self._sky_ii: np.ndarray | None = None
        self._sky_pos: dict[tuple[int, int], np.ndarray] = {}
        self._reg = None

    # integral images ---------------------------------------------------------
    def sky_integral(self) -> np.ndarray:
        if self._sky_ii is None:
            ii = np.zeros((self.H + 1, self.W + 1), np.int32)
            np.cumsum(np.cumsum(self.sky, axis=0, dtype=np.int32), axis=1, out=ii[1:, 1:])
            self._sky_ii = ii
        return self._sky_ii

    @staticmethod
    def _box_sums(ii: np.ndarray, h: int, w: int) -> np.ndarray:
        """Sums over every h×w window (top-left indexed) of the array whose integral is ``ii``."""
        return ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]

    @staticmethod
    def _sums_at(ii: np.ndarray, r: int, c: int, ny: int, nx: int, kh: int, kw: int) -> np.ndarray:
        """Sums over the kh×kw windows with top-left (r + i, c + j), i < ny, j < nx."""
        return (
            ii[r + kh : r + kh + ny, c + kw : c + kw + nx]
            - ii[r : r + ny, c + kw : c + kw + nx]
            - ii[r + kh : r + kh + ny, c : c + nx]
            + ii[r : r + ny, c : c + nx]
        )

    # regions -------------------------------------------------------------------
    def pick_window(self, R: int, min_sky: int, gt_rects: list, margin: int) -> tuple[int, int] | None:
        """Top-left of a uniformly drawn R×R window: ≥ min_sky sky pixels, no ground-truth
        box inside, ``margin`` px away from the windows already drawn; None if there is none."""
        H, W = self.H, self.W
        if H < R or W < R:
            return None
        ny, nx = H - R + 1, W - R + 1
        rects = list(gt_rects) + [(y - margin, y + r + margin, x - margin, x + r + margin) for y, x, r in self.blocked]
        rect_arr = np.asarray(rects, np.int64).reshape(-1, 4)
        # fast path: the first valid of uniform random candidates is uniform over valid windows
        ys = self.rng.integers(0, ny, size=_FAST_TRIES)
        xs = self.rng.integers(0, nx, size=_FAST_TRIES)
        ok = np.ones(_FAST_TRIES, bool)
        if len(rect_arr):
            inter = (
                (ys[:, None] < rect_arr[None, :, 1])
                & (ys[:, None] + R > rect_arr[None, :, 0])
                & (xs[:, None] < rect_arr[None, :, 3])
                & (xs[:, None] + R > rect_arr[None, :, 2])
            )
            ok &= ~inter.any(axis=1)
        full = min_sky >= R * R
        for i in np.flatnonzero(ok).tolist():
            y, x = int(ys[i]), int(xs[i])
            if self.sky is None:
                return y, x
            win = self.sky[y : y + R, x : x + R]
            if (full and win.all()) or (not full and int(win.sum()) >= min_sky):
                return y, x
        # exhaustive: every window
        valid = np.ones((ny, nx), bool)
        if self.sky is not None:
            valid &= self._box_sums(self.sky_integral(), R, R) >= min_sky
        for r0, r1, c0, c1 in rect_arr.tolist():
            # windows whose [y, y+R) x [x, x+R) intersects [r0, r1) x [c0, c1)
            a0, a1 = max(0, r0 - R + 1), min(ny, r1)
            b0, b1 = max(0, c0 - R + 1), min(nx, c1)
            if a1 > a0 and b1 > b0:
                valid[a0:a1, b0:b1] = False
        flat = np.flatnonzero(valid)
        if flat.size == 0:
            return None
        k = int(flat[self.rng.integers(0, flat.size)])
        return k // nx, k % nx

    def open_region(self, y0: int, x0: int, R: int, apron: int) -> None:
        """Start filling the window at (y0, x0): local copies of occupancy (and sky) with an
        ``apron``-pixel border (outside the image counts as free), plus an empty raster of the
        region's own targets (for tight spacing)."""
        self.blocked.append((y0, x0, R))
        H, W = self.H, self.W
        a = apron
        ya, xa = y0 - a, x0 - a
        n = R + 2 * a
        loc = np.zeros((n + 1, n + 1), np.int32)  # leading zero row / column: cumsum = integral image
        sy0, sy1, sx0, sx1 = max(0, ya), min(H, ya + n), max(0, xa), min(W, xa + n)
        loc[1 + sy0 - ya : 1 + sy1 - ya, 1 + sx0 - xa : 1 + sx1 - xa] = self.occ[sy0:sy1, sx0:sx1]
        sky_ii = None
        if self.sky is not None:
            skw = self.sky[y0 : y0 + R, x0 : x0 + R]
            if not skw.all():  # partly-sky window (region_sky_fraction < 1)
                sky_ii = np.zeros((R + 1, R + 1), np.int32)
                np.cumsum(np.cumsum(skw, axis=0, dtype=np.int32), axis=1, out=sky_ii[1:, 1:])
        self._reg = {
            "y0": y0, "x0": x0, "R": R, "a": a, "loc": loc, "near": np.zeros_like(loc), "n": 0, "sky_ii": sky_ii
        }

    def place_in_region(self, h: int, w: int, g: int, near_gap: int = 0) -> tuple[int, int] | None:
        """Uniform position of an h×w box inside the open region with clearance ``g`` px from
        every taken pixel; with ``near_gap > 0`` restricted, when possible, to the positions
        within ``near_gap`` px of a target already placed in this region. None if no position."""
        reg = self._reg
        R, a = reg["R"], reg["a"]
        if h > R or w > R:
            return None
        ny, nx = R - h + 1, R - w + 1
        ii = reg["loc"].cumsum(0).cumsum(1)
        # g-dilated box at local top-left (a - g + dy, a - g + dx) <-> target top-left (y0 + dy, x0 + dx)
        valid = self._sums_at(ii, a - g, a - g, ny, nx, h + 2 * g, w + 2 * g) == 0
        if reg["sky_ii"] is not None:
            valid &= self._sums_at(reg["sky_ii"], 0, 0, ny, nx, h, w) == h * w
        if near_gap > 0 and reg["n"] > 0:
            nii = reg["near"].cumsum(0).cumsum(1)
            # clearance <= near_gap  <=>  the (near_gap + 1)-dilated box meets a region target
            d = near_gap + 1
            close = self._sums_at(nii, a - d, a - d, ny, nx, h + 2 * d, w + 2 * d) > 0
            both = valid & close
            if both.any():
                valid = both
        flat = np.flatnonzero(valid)
        if flat.size == 0:
            return None
        k = int(flat[self.rng.integers(0, flat.size)])
        dy, dx = k // nx, k % nx
        y, x = reg["y0"] + dy, reg["x0"] + dx
        self.occ[y : y + h, x : x + w] = True
        reg["loc"][1 + a + dy : 1 + a + dy + h, 1 + a + dx : 1 + a + dx + w] = 1
        reg["near"][1 + a + dy : 1 + a + dy + h, 1 + a + dx : 1 + a + dx + w] = 1
        reg["n"] += 1
        return y, x

    # targets anywhere -----------------------------------------------------------
    def place_anywhere(self, h: int, w: int, g: int) -> tuple[int, int] | None:
        """Uniform position of an h×w box anywhere allowed (in sky if any) with clearance g.

        Three stages, each uniform over the valid positions: random positions of the image;
        random positions among the all-sky ones (cached per size: sparse sky); exhaustive."""
        H, W = self.H, self.W
        if h > H or w > W:
            return None
        ny, nx = H - h + 1, W - w + 1
        occ = self.occ
        ys = self.rng.integers(0, ny, size=_FAST_TRIES).tolist()
        xs = self.rng.integers(0, nx, size=_FAST_TRIES).tolist()
        for y, x in zip(ys, xs):
            if self.sky is not None and not self.sky[y : y + h, x : x + w].all():
                continue
            if not occ[max(0, y - g) : y + h + g, max(0, x - g) : x + w + g].any():
                occ[y : y + h, x : x + w] = True
                return y, x
        cand = None
        if self.sky is not None:
            cand = self._sky_positions(h, w)
            if cand.size == 0:
                return None
            for k in cand[self.rng.integers(0, cand.size, size=_FAST_TRIES)].tolist():
                y, x = k // nx, k % nx
                if not occ[max(0, y - g) : y + h + g, max(0, x - g) : x + w + g].any():
                    occ[y : y + h, x : x + w] = True
                    return y, x
        # exhaustive
        padded = np.zeros((H + 2 * g + 1, W + 2 * g + 1), np.int32)
        padded[1 + g : 1 + g + H, 1 + g : 1 + g + W] = occ
        ii = padded.cumsum(0).cumsum(1)
        free = self._sums_at(ii, 0, 0, ny, nx, h + 2 * g, w + 2 * g).ravel() == 0
        flat = np.flatnonzero(free) if cand is None else cand[free[cand]]
        if flat.size == 0:
            return None
        k = int(flat[self.rng.integers(0, flat.size)])
        y, x = k // nx, k % nx
        occ[y : y + h, x : x + w] = True
        return y, x

    def _sky_positions(self, h: int, w: int) -> np.ndarray:
        """Flat indices (over the (H-h+1)×(W-w+1) top-left grid) of the all-sky h×w windows."""
        key = (h, w)
        hit = self._sky_pos.get(key)
        if hit is None:
            hit = np.flatnonzero(self._box_sums(self.sky_integral(), h, w) == h * w)
            self._sky_pos[key] = hit
        return hit


# ---------------------------------------------------------------------- config
_CFG_PARAMS = {
    "regions",
    "region_size",
    "targets_per_region",
    "max_target_size",
    "gap",
    "lam",
    "rho",
    "sigma",
    "theta",
    "prob",
    "seed",
    "region_sky_fraction",
    "gaussian_peak_norm",
    "tight_spacing",
    "box_margin",
    "value_range",
}
_CFG_SWITCHES = {"copy_paste", "cluster", "gaussian", "background_aware"}
#: ``data.bagcp.variant``: the paper's reading (this module) or the reference code (:mod:`irdet.data.bagcp_reference`)
BAGCP_VARIANTS = ("paper", "reference")


def build_bagcp(cfg: Mapping | None, library: TargetLibrary | None = None, *,
                img_size: Sequence[int] | None = None, keep_ratio: bool = False) -> BAGCP | None:
    """Build :class:`BAGCP` from a config dict, or None when it is disabled.

    ``variant``: ``"paper"`` (default) builds :class:`BAGCP`, the paper's reading;
    ``"reference"`` builds :class:`irdet.data.bagcp_reference.ReferenceBAGCP`, the authors'
    code (:func:`irdet.data.bagcp_reference.build_reference_bagcp`, which scales targets by the
    training resize ``img_size`` / ``keep_ratio``; ``img_size`` None = native resolution).

    ``cfg`` keys: ``enabled`` (default True), the switches ``copy_paste``, ``cluster``,
    ``gaussian``, ``background_aware`` (default True each), ``library`` (path of a saved
    :class:`TargetLibrary` or null) and the paper parameters of :class:`BAGCP`
    (``regions``, ``region_size``, ``targets_per_region``, ``max_target_size``, ``gap``,
    ``lam``, ``rho``, ``sigma``, ``theta``, ``prob``, ``seed``, ``region_sky_fraction``,
    ``gaussian_peak_norm``, ``tight_spacing``, ``box_margin``, ``value_range``); lists are accepted for pairs.

    Args:
        cfg: the dict (None → None).
        library: an already built/loaded library; takes precedence over ``cfg["library"]``.
        img_size, keep_ratio: the training resize (``data.img_size`` (H, W) or None,
            ``data.keep_ratio``); read by the reference variant only.

    Returns:
        the transform, or None when ``enabled`` or ``copy_paste`` is false (Table III row a).

    Raises:
        ConfigError: unknown key, bad value, or no library available while enabled.
        DataError: the library file is missing or corrupt.
    """
    if cfg is None:
        return None
    cfg = dict(cfg)
    variant = cfg.get("variant", "paper")
    if variant not in BAGCP_VARIANTS:
        raise ConfigError(f"bagcp: variant must be one of {list(BAGCP_VARIANTS)}, got {variant!r}")
    unknown = set(cfg) - _CFG_PARAMS - _CFG_SWITCHES - {"enabled", "library", "variant"}
    if unknown:
        allowed = sorted(_CFG_PARAMS | _CFG_SWITCHES | {"enabled", "library", "variant"})
        raise ConfigError(f"bagcp: unknown key(s) {sorted(unknown)}; allowed: {allowed}")
    if not cfg.get("enabled", True) or not cfg.get("copy_paste", True):
        return None
    if library is None:
        path = cfg.get("library")
        if not path:
            raise ConfigError(
                "bagcp: enabled but no target library (set bagcp.library to a file built by build_target_library)"
            )
        library = TargetLibrary.load(path)
    if variant == "reference":
        from irdet.data.bagcp_reference import build_reference_bagcp

        return build_reference_bagcp(cfg, library, img_size=img_size, keep_ratio=keep_ratio)
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _CFG_PARAMS}
    switches = {k: bool(cfg[k]) for k in _CFG_SWITCHES if k in cfg}
    try:
        return BAGCP(library, **switches, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"bagcp: {exc}") from None
