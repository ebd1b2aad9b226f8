"""The BAG-CP transform: Background-Aware Gaussian Copy-Paste over irdet sample dicts (Xiao et
al., arXiv 2407.20078, §III-B, §IV-C, Eqs. 1–3), and the ``data.bagcp`` schema: the keys
(:data:`SECTION_KEYS` and the fields of :class:`BAGCPSettings`), their defaults and checks.

:class:`BAGCP` pastes small targets from a :class:`~irdet.data.bagcp.library.TargetLibrary`
into a training sample, in clusters, in the sky only, blended with a rotated Gaussian. It is
applied to the sample dict **after** resizing (training pipeline: read → Resize 512×512 →
BAG-CP → horizontal flip → pad) and works on images of any size (synthesis pastes in the
original pixels, :mod:`irdet.data.synthesis`).

Procedure for one sample (paper numbers are the defaults)
---------------------------------------------------------
1. Draw ``n ~ U{regions}`` (1–3) dense regions and, per region, ``k ~ U{targets_per_region}``
   (8–12) targets; each target is a uniformly drawn library entry shrunk to fit
   ``max_target_size × max_target_size`` (5×5) px keeping its aspect ratio (never enlarged),
   with a clearance ``g ~ U{gap}`` (1–2) px and, with ``gaussian``, ``λ ~ U[lam]``,
   ``ρx, ρy ~ U[rho]`` each with a random sign, ``σx, σy ~ U[sigma]``, ``θ ~ U[theta]``.
2. Placement (:mod:`irdet.data.bagcp.placement`): ``cluster=True``, each region a
   ``region_size`` (20×20) window in sky (``sky_mask == 1``; anywhere with
   ``background_aware=False``) and its targets inside it, 1–2 px apart with ``tight_spacing``;
   ``cluster=False`` (Table III rows b, d), every target on its own anywhere allowed.
3. Blending, Eq. (1) (:func:`~irdet.data.bagcp.blend.blend`): ``T_new = T_back + B_box · λ · G``
   on the target's pixels, added equally to the three channels and clipped to ``value_range``.
   ``B_box`` is the target's contrast over its source background (see
   :mod:`irdet.data.bagcp.extract`), zero outside its mask, so only the target's pixels
   change; ``G`` is Eqs. (2)–(3) (:func:`~irdet.data.bagcp.gaussian.gaussian_weights_batch`).
   ``gaussian=False`` ("no Gaussian", Table III rows b, c): ``λ ≡ 1`` and ``G ≡ 1``, i.e. a
   hard paste of the target's contrast: ``T_new = T_back + B_box``.
4. Annotations (:func:`~irdet.data.bagcp.sample.pasted_sample`): each pasted target appends a
   box (pixel-edge, tight around its pasted pixels, optionally widened by ``box_margin``), a
   label 0, its pixels to ``target_mask`` (when the sample has one) and a point (when the
   sample has ``points``) at the pasted pixel nearest to the box centre (pixel-index
   convention ``(col, row)`` of :mod:`irdet.data.io`). The sky mask is unchanged.

Table III switches: (a) ``copy_paste=False`` (identity); (b) copy-paste only; (c) +cluster;
(d) +gaussian; (e) cluster+gaussian; (f) all four (default). A region or target that cannot be
placed is **refused and counted** in :attr:`BAGCP.stats`, never silently lost and never forced
outside the sky. The authors' code differs from this reading in six ways; it is available as
``data.bagcp.variant: reference`` (:mod:`irdet.data.bagcp.reference`).

Random streams: ``seed`` given → reproducible run: the main process draws from
``SeedSequence(seed)``; inside a ``DataLoader`` worker the stream is derived from
``(seed, torch.initial_seed())`` — PyTorch gives every worker a distinct initial seed (base
seed + worker id, base seed re-drawn at every epoch), so workers draw distinct streams, and
a seeded DataLoader (``generator=``) reproduces them. ``seed=None`` → the stream follows
``torch.initial_seed()`` everywhere (``torch.manual_seed`` / ``lightning.seed_everything``
control it). Inside a sample of :class:`irdet.data.sample_stream.SeededSamples` (irdet
training) a fresh stream is derived for every sample, in the main process too, from the
sample's own seed ``torch.initial_seed()`` (and ``seed`` when given): the same sample of the
same epoch gets the same pastes with any number of workers, and after a resume. The generator
is re-derived whenever ``torch.initial_seed()`` changes. ``__call__(sample, rng=...)`` uses an
explicit ``numpy.random.Generator`` instead (synthesis).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from irdet.data.bagcp.blend import blend, float_canvas, restore_dtype
from irdet.data.bagcp.gaussian import gaussian_weights_batch
from irdet.data.bagcp.library import TargetLibrary
from irdet.data.bagcp.placement import Placer, place_in_clusters, place_independently
from irdet.data.bagcp.sample import image_hw, occupancy, pasted_sample, sky_raster
from irdet.data.sample_stream import in_seeded_sample

__all__ = ["BAGCP", "BAGCPSettings", "SECTION_KEYS", "STAT_KEYS"]

#: keys of ``data.bagcp`` besides the :class:`BAGCPSettings`: ``enabled`` (default True), ``library``
#: (path of a saved target library or null) and ``variant`` (:data:`irdet.data.bagcp.build.VARIANTS`)
SECTION_KEYS = ("enabled", "library", "variant")

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


def _range(name: str, value, *, integer: bool = False, lo: float | None = None) -> tuple:
    """``value`` as a checked ``(min, max)`` pair (ints with ``integer``, else floats)."""
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


@dataclasses.dataclass
class BAGCPSettings:
    """The parameters of :class:`BAGCP`, their defaults (the paper's numbers) and their checks;
    the keys of ``data.bagcp`` besides ``enabled``, ``library`` and ``variant``.

    Args:
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
        rho: (min, max) of |ρx|, |ρy|, Eq. (2) (paper 0–0.2; sign random,
            :mod:`irdet.data.bagcp.gaussian`).
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
            (reference-like, looser clusters, more targets refused).
        box_margin: (left, top, right, bottom) pixels added to each pasted box (clipped to
            the image). Default 0: boxes tight around the pasted pixels, which is also the
            style of DenseSIRST's boxes as :func:`irdet.data.io.read_voc_xml` reads them
            (tight around their target masks for 13,634 of 13,655 boxes). irdet extension
            to match another dataset's annotation style.
        value_range: (lo, hi) clip range of Eq. (1) (images in [0, 255]).

    Pairs may be given as lists; they are stored as tuples, switches as bools.

    Raises:
        ValueError: a bad value (names the parameter).
    """

    copy_paste: bool = True
    cluster: bool = True
    gaussian: bool = True
    background_aware: bool = True
    regions: tuple = (1, 3)
    region_size: int = 20
    targets_per_region: tuple = (8, 12)
    max_target_size: int = 5
    gap: tuple = (1, 2)
    lam: tuple = (0.5, 1.0)
    rho: tuple = (0.0, 0.2)
    sigma: tuple = (0.3, 0.6)
    theta: tuple = (-90.0, 90.0)
    prob: float = 1.0
    seed: int | None = None
    region_sky_fraction: float = 1.0
    gaussian_peak_norm: bool = True
    tight_spacing: bool = True
    box_margin: tuple = (0, 0, 0, 0)
    value_range: tuple = (0.0, 255.0)

    #: the Table III switches
    SWITCHES: ClassVar[tuple[str, ...]] = ("copy_paste", "cluster", "gaussian", "background_aware")

    def __post_init__(self):
        for name in self.SWITCHES:
            setattr(self, name, bool(getattr(self, name)))
        self.regions = _range("regions", self.regions, integer=True, lo=0)
        self.targets_per_region = _range("targets_per_region", self.targets_per_region, integer=True, lo=0)
        self.gap = _range("gap", self.gap, integer=True, lo=0)
        self.lam = _range("lam", self.lam)
        self.rho = _range("rho", self.rho, lo=0.0)
        self.sigma = _range("sigma", self.sigma, lo=0.0)
        self.theta = _range("theta", self.theta)
        self.value_range = _range("value_range", self.value_range)
        for name in ("region_size", "max_target_size"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"BAG-CP {name} must be a positive integer, got {v!r}")
            setattr(self, name, int(v))
        if not 0.0 <= float(self.prob) <= 1.0:
            raise ValueError(f"BAG-CP prob must be in [0, 1], got {self.prob!r}")
        self.prob = float(self.prob)
        if not 0.0 < float(self.region_sky_fraction) <= 1.0:
            raise ValueError(f"BAG-CP region_sky_fraction must be in (0, 1], got {self.region_sky_fraction!r}")
        self.region_sky_fraction = float(self.region_sky_fraction)
        self.gaussian_peak_norm = bool(self.gaussian_peak_norm)
        self.tight_spacing = bool(self.tight_spacing)
        try:
            bm = tuple(int(v) for v in self.box_margin)
        except (TypeError, ValueError):
            bm = ()
        if len(bm) != 4 or min(bm) < 0:
            raise ValueError(
                f"BAG-CP box_margin must be 4 non-negative integers (left, top, right, bottom), got {self.box_margin!r}"
            )
        self.box_margin = bm
        self.seed = None if self.seed is None else int(self.seed)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every parameter name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))


class BAGCP:
    """Background-Aware Gaussian Copy-Paste transform over irdet sample dicts.

    Args:
        library: a :class:`TargetLibrary` or the path of a saved one (may be None only when
            ``copy_paste=False``).
        **settings: the parameters of :class:`BAGCPSettings` (defaults: the paper's numbers),
            set as attributes of the same names.

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
            ``grid`` ``(x, y, w, h)`` pasted box grid, ``region`` (index or -1), ``gap``,
            ``lam``, ``rho_x``, ``rho_y``, ``sigma_x``, ``sigma_y``, ``theta``, ``box``
            annotation box, ``point``).

    Raises:
        TypeError: an unknown parameter.
        ValueError: bad parameter ranges, no library with ``copy_paste``, a missing
            ``sky_mask`` with ``background_aware``, or an image that is not (C, H, W).
        DataError: the library file is missing or corrupt.
    """

    def __init__(self, library: TargetLibrary | str | Path | None, **settings):
        unknown = sorted(set(settings) - set(BAGCPSettings.names()))
        if unknown:
            raise TypeError(f"BAG-CP got unknown parameter(s) {unknown}; allowed: {sorted(BAGCPSettings.names())}")
        if isinstance(library, (str, Path)):
            library = TargetLibrary.load(library)
        if library is None and settings.get("copy_paste", BAGCPSettings.copy_paste):
            raise ValueError("BAG-CP needs a target library when copy_paste=True")
        self.library = library
        checked = BAGCPSettings(**settings)
        for name in BAGCPSettings.names():
            setattr(self, name, getattr(checked, name))
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

    def _draw_targets(self, rng: np.random.Generator, n: int) -> dict:
        """Per-target draws of step 1 for ``n`` targets: ``index`` (library entry), ``gap`` and,
        with ``gaussian``, ``lam`` (n,), ``rho`` (n, 2) signed, ``sigma`` (n, 2), ``theta`` (n,)."""
        d = {"index": rng.integers(0, len(self.library), size=n).tolist(),
             "gap": rng.integers(self.gap[0], self.gap[1] + 1, size=n).tolist()}
        if self.gaussian:
            d["lam"] = rng.uniform(self.lam[0], self.lam[1], size=n)
            d["rho"] = rng.uniform(self.rho[0], self.rho[1], size=(n, 2)) * rng.choice((-1.0, 1.0), size=(n, 2))
            d["sigma"] = rng.uniform(self.sigma[0], self.sigma[1], size=(n, 2))
            d["theta"] = rng.uniform(self.theta[0], self.theta[1], size=n)
        return d

    # ------------------------------------------------------------------ main
    def _entry(self, index: int) -> tuple:
        """Resized appearance of a library entry plus its cached footprint geometry:
        ``(B, F, h, w, (c0, r0, c1, r1) footprint box, (x, y) pixel nearest its centre)``."""
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
        H, W = image_hw(sample["image"])
        sky = sky_raster(sample, H, W, "BAG-CP with background_aware=True") if self.background_aware else None
        occ, gt_rects = occupancy(sample, H, W)
        n_regions = int(rng.integers(self.regions[0], self.regions[1] + 1))
        per_region = rng.integers(self.targets_per_region[0], self.targets_per_region[1] + 1, size=n_regions)
        n_total = int(per_region.sum())
        self.stats["targets_requested"] += n_total
        if n_total == 0:
            return sample
        draws = self._draw_targets(rng, n_total)
        sizes = [self._entry(i)[2:4] for i in draws["index"]]
        placer = Placer(occ, sky, rng)
        if self.cluster:
            placed, self.last["regions"] = place_in_clusters(
                placer, sizes, draws["gap"], per_region, region_size=self.region_size,
                region_sky_fraction=self.region_sky_fraction, gt_rects=gt_rects, margin=self.gap[1],
                near_gap=self.gap[1] if self.tight_spacing else 0,
            )
            self.stats["regions_requested"] += n_regions
            self.stats["regions_placed"] += len(self.last["regions"])
            self.stats["regions_refused"] += n_regions - len(self.last["regions"])
        else:
            placed = place_independently(placer, sizes, draws["gap"])
        self.stats["targets_pasted"] += len(placed)
        self.stats["targets_refused"] += n_total - len(placed)
        if not placed:
            return sample
        return self._paste(sample, placed, draws, sizes, H, W)

    def _paste(self, sample: dict, placed: list, draws: dict, sizes: list, H: int, W: int) -> dict:
        """Blend the placed targets (Eq. 1) and annotate them; records :attr:`last` targets."""
        if self.gaussian:  # the Gaussians of all pasted targets at once, on a common padded grid
            sel = np.asarray([p[0] for p in placed])
            hw = np.asarray([sizes[p[0]] for p in placed], np.float64)
            rho, sigma = draws["rho"], draws["sigma"]
            gauss = gaussian_weights_batch(
                hw[:, 0], hw[:, 1], rho[sel, 0], rho[sel, 1], sigma[sel, 0], sigma[sel, 1], draws["theta"][sel],
                size=self.max_target_size, peak_norm=self.gaussian_peak_norm,
            )
        image = sample["image"]
        work, canvas = float_canvas(image)
        footprints, boxes, points = [], [], []
        for n, (t, region_id, y, x) in enumerate(placed):
            index = draws["index"][t]
            b, f, h, w, (c0, r0, c1, r1), (px, py) = self._entry(index)
            rec = {"index": index, "grid": (x, y, w, h), "region": region_id, "gap": draws["gap"][t]}
            if self.gaussian:
                lam, g = float(draws["lam"][t]), gauss[n, :h, :w]
                rec.update(lam=lam, rho_x=float(draws["rho"][t, 0]), rho_y=float(draws["rho"][t, 1]),
                           sigma_x=float(draws["sigma"][t, 0]), sigma_y=float(draws["sigma"][t, 1]),
                           theta=float(draws["theta"][t]))
            else:
                lam, g = 1.0, None
                rec.update(lam=1.0, rho_x=0.0, rho_y=0.0, sigma_x=math.inf, sigma_y=math.inf, theta=0.0)
            blend(canvas, y, x, b, lam, g, footprint=f, value_range=self.value_range)
            ml, mt, mr, mb = self.box_margin
            box = (max(0, x + c0 - ml), max(0, y + r0 - mt), min(W, x + c1 + mr), min(H, y + r1 + mb))
            point = (x + px, y + py)
            rec.update(box=box, point=point)
            self.last["targets"].append(rec)
            footprints.append((y, x, f))
            boxes.append(box)
            points.append(point)
        return pasted_sample(sample, restore_dtype(work, image, self.value_range), footprints, boxes, points, H, W)
