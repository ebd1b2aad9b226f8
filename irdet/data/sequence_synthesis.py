"""Synthetic moving infrared small targets on real infrared backgrounds (irdet benchmark generator).

:func:`synthesize_sequences` turns DenseSIRST images and their sky masks (``SkySeg``) into short
videos in the layout read by :class:`irdet.data.sequences.SequenceDataset`
(``SequenceDataset.from_layout(out_dir, split, dataset="irdet")``)::

    out_dir/images/<seq>/<frame>.png      8-bit grey frames, frames numbered 0 .. F−1 (no padding)
    out_dir/masks/<seq>/<frame>.png       target mask, 255 = target pixel (0 elsewhere)
    out_dir/sky/<seq>/<frame>.png         sky mask of the frame, 255 = sky
    out_dir/annotations/<split>.json      COCO: images (file_name "<seq>/<frame>.png", plus
                                          "sequence", "frame"), annotations (bbox [x, y, w, h]
                                          pixel-edge, "track_id", "snr"), categories
                                          [{"id": 1, "name": "target"}], "tracks" (per track:
                                          sequence, snr, size, library entry, motion)
    out_dir/splits/<split>.txt            sequence names of the split
    out_dir/summary.json                  the summary returned (without out_dir and timing)

Splits: ``"train"`` (the first sequences), ``"val"`` (the next ``n_val = round(val_fraction ·
sequences)``) and, with ``test_fraction > 0``, ``"test"`` (the last ``round(test_fraction ·
sequences)``: a held-out split for reporting, so that checkpoints are selected on val only).
Their background images are disjoint: the background list is shuffled once; its first
``round(test_fraction · n)`` images serve the test sequences, the next
``round(val_fraction · n)`` (at least one each) the val sequences, the rest train; the
target-library entries are partitioned the same way by their source image (when a part
would be empty, all entries are used).

One sequence (all sizes in pixels, times in frames)
---------------------------------------------------
1. **Background**: a DenseSIRST image of the split's pool, made grey (channel mean). Its own
   annotated targets are removed (``remove_real_targets``): their mask pixels and boxes,
   dilated by 1 px, are refilled by normalised convolution (mean of the known pixels in a
   7×7 window, grown until every hole is filled), so they are neither unlabelled positives
   nor a bias of the benchmark. An image smaller than the window is enlarged (bilinear; sky
   mask nearest) to cover it.
2. **Camera**: a window of ``size`` (H, W) moves with constant velocity (speed ~ U[``pan``]
   px/frame, direction uniform; slowed down if the image is too small for the whole path) plus
   an independent jitter ~ U[−``jitter``, ``jitter``] px per axis and frame, always inside the
   image. Frames are sampled at sub-pixel positions (bilinear); the frame's sky mask is the
   image's sky mask at the nearest pixel offset. Start positions are tried until the window
   holds ≥ ``min_sky`` sky in its first, middle and last frame (else the best try is kept and
   counted in ``low_sky_sequences``); up to 8 background images are tried.
3. **Targets**: ``n ~ U{targets}`` tracks. Each has a BAG-CP appearance: a positive-contrast
   entry ``B_box`` of the :class:`~irdet.data.target_library.TargetLibrary` (background-
   subtracted, zero outside the target mask) resampled so that its longer side is
   ``s ~ U{target_size}`` px (shrinking: :meth:`TargetLibrary.resized`; enlarging: the same
   area-weight resampling, :func:`~irdet.data.target_library.area_resample`), times the
   Gaussian ``G`` of Eqs. (2)–(3) (:func:`irdet.data.bagcp.gaussian_weights`, ρ ∈ ±[0, 0.2],
   σ ∈ [0.3, 0.6], θ ∈ [−90°, 90°], peak-normalised), i.e. Eq. (1)
   ``T_new = T_back + B_box · λ · G`` with λ absorbed in the amplitude set by the SNR (below).
   The footprint (target mask) is cropped to its bounding box, which is the annotation box.
   The appearance is fixed along the track.
4. **Motion**: world position ``P(t) = P0 + V·t + A·t²/2`` (speed |V| ~ U[``speed``] px/frame,
   |A| ~ U[0, ``accel``] px/frame², uniform directions), ``P0`` on a random sky pixel of the
   first frame; the target is drawn at ``P(t) − window(t)`` (box top-left rounded to the
   pixel). A trajectory is accepted when, in **every** frame, the whole box lies inside the
   frame, every box pixel is sky in that frame's sky mask, and the box keeps
   ``min_separation`` px from the other targets' boxes; otherwise it is redrawn (40 tries),
   then the target is refused and counted (``targets_refused``). Per-frame displacement of a
   box is at most ``speed[1] + accel·(F − 1) + pan[1] + 2√2·jitter + √2`` px.
5. **Noise**: per sequence, σ_n ~ U[``noise``] grey levels of white Gaussian noise per frame
   and a fixed-pattern column offset per column ~ N(0, σ_c²), σ_c ~ U[``column_noise``]
   (fixed in sensor coordinates for the whole sequence), added to the whole frame.
6. **SNR** (definition): ``SNR = A / σ_b`` where ``A`` is the target's peak added contrast
   (grey levels, the maximum of the added signal over its pixels) and ``σ_b`` the standard
   deviation of the frame *before the targets are added* (background + sensor noise) in a
   ring around the target's box: the pixels within ``ring[1]`` px of the box but farther than
   ``ring[0]`` px (Chebyshev distance; default 2–6 px), clipped to the frame; ``σ_b`` is
   floored at 1 grey level. Each track draws its SNR ~ U[``snr``] once; its amplitude is set
   in every frame from that frame's ring, so the SNR holds in every frame. The frame is then
   clipped to [0, 255] and rounded to 8 bits (a target on a near-saturated sky may lose some
   contrast to clipping).

Harder benchmark (off by default): log-uniform SNR, tracks built to cross the sky/non-sky
border or a cloud edge, and static target-like distractors annotated apart from the targets
(``"distractors"`` in the COCO file): :mod:`irdet.data.sequence_hardness`.

Randomness: ``numpy.random.SeedSequence(seed).spawn(sequences + 1)``: child 0 draws the
background pools, child ``k + 1`` everything of sequence ``k``; the same arguments give
byte-identical files. Every file is written atomically (:mod:`irdet.data.io`).

Sources: BAG-CP appearance and Eqs. (1)–(3) from the BAFE-Net paper (Xiao et al., arXiv 2407.20078), output layout
after the SSTNet/Tridos public layout (:mod:`irdet.data.sequences`); camera, motion, noise and
SNR model are irdet's (no public reference).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from irdet.data.bagcp import gaussian_weights
from irdet.data.io import atomic_save_image, atomic_write_bytes, atomic_write_json
from irdet.data.library_cache import cached_target_library
from irdet.data.sequence_hardness import (
    draw_crossing,
    draw_snr,
    hardness_params,
    place_crossing_track,
    place_distractors,
)
from irdet.data.target_library import TargetLibrary, area_resample, build_target_library
from irdet.errors import ConfigError, DataError

__all__ = ["synthesize_sequences", "print_summary", "library_for", "SPLITS", "CATEGORY"]

#: Output split names (train sequences first, then val).
SPLITS = ("train", "val", "test")
#: The single COCO category written (as DAUB's JSON).
CATEGORY = {"id": 1, "name": "target", "supercategory": "none"}

_PATH_TRIES = 40  # trajectories tried per target
_START_TRIES = 20  # camera start positions tried per background
_BG_TRIES = 8  # background images tried per sequence


# ---------------------------------------------------------------------- parameters
def _pair(name: str, value, *, integer: bool = False, lo: float | None = None) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = value
        a, b = (int(a), int(b)) if integer else (float(a), float(b))
    except (TypeError, ValueError):
        raise ConfigError(
            f"synthesize-sequences: {name} must be a number or a (min, max) pair, got {value!r}"
        ) from None
    if integer and (a != value[0] or b != value[1]):
        raise ConfigError(f"synthesize-sequences: {name} must be integers, got {value!r}")
    if not a <= b or (lo is not None and a < lo) or not (math.isfinite(a) and math.isfinite(b)):
        bound = "" if lo is None else f"{lo} <= "
        raise ConfigError(f"synthesize-sequences: {name} must satisfy {bound}min <= max, got {value!r}")
    return a, b


def _nonneg(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not (v >= 0 and math.isfinite(v)):
        raise ConfigError(f"synthesize-sequences: {name} must be a non-negative number, got {value!r}")
    return v


def library_for(root, split: str | Sequence[str], library=None, *, progress: bool = False) -> TargetLibrary:
    """The target library to use: ``library`` (object or ``.npz`` path), else built from
    ``root``/``split`` — cached (:func:`irdet.data.library_cache.cached_target_library`, the
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


# ---------------------------------------------------------------------- backgrounds
def _inpaint(gray: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` pixels with the mean of the known pixels around them (normalised
    convolution, 7×7 window, grown ×2 until every hole pixel has a known neighbour)."""
    from scipy.ndimage import uniform_filter

    if not hole.any():
        return gray
    out = gray.astype(np.float32, copy=True)
    known = (~hole).astype(np.float32)
    if not known.any():
        return out
    k = 7
    todo = hole.copy()
    while todo.any():
        num = uniform_filter(out * known, size=k, mode="nearest")
        den = uniform_filter(known, size=k, mode="nearest")
        ok = todo & (den > 1e-6)
        out[ok] = num[ok] / den[ok]
        known[ok] = 1.0
        todo &= ~ok
        k = k * 2 + 1
    return out


def _resize(arr: np.ndarray, h: int, w: int, nearest: bool) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(arr.astype(np.uint8) if nearest else arr.astype(np.float32), mode="L" if nearest else "F")
    img = img.resize((w, h), Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
    return np.asarray(img).astype(bool if nearest else np.float32)


class _Background:
    """A prepared background: grey image (edge-padded by one row/column for bilinear crops),
    sky mask and its integral image."""

    def __init__(self, image_id: str, gray: np.ndarray, sky: np.ndarray, scale: float, removed: int):
        self.image_id = image_id
        self.H, self.W = gray.shape
        self.gray_p = np.pad(gray.astype(np.float32), ((0, 1), (0, 1)), mode="edge")
        self.sky = sky.astype(bool)
        ii = np.zeros((self.H + 1, self.W + 1), np.int64)
        np.cumsum(np.cumsum(self.sky, axis=0, dtype=np.int64), axis=1, out=ii[1:, 1:])
        self.sky_ii = ii
        self.scale = scale
        self.removed = removed

    def sky_fraction(self, y: int, x: int, h: int, w: int) -> float:
        ii = self.sky_ii
        return float(ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x] + ii[y, x]) / (h * w)

    def crop(self, y: float, x: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(grey (h, w) float32 bilinear at top-left (y, x), sky (h, w) bool at the nearest offset)."""
        y0, x0 = int(math.floor(y)), int(math.floor(x))
        fy, fx = y - y0, x - x0
        g = self.gray_p
        a = g[y0 : y0 + h, x0 : x0 + w]
        b = g[y0 : y0 + h, x0 + 1 : x0 + w + 1]
        c = g[y0 + 1 : y0 + h + 1, x0 : x0 + w]
        d = g[y0 + 1 : y0 + h + 1, x0 + 1 : x0 + w + 1]
        crop = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)
        yi, xi = int(round(y)), int(round(x))
        return crop.astype(np.float32), self.sky[yi : yi + h, xi : xi + w]


def _prepare_background(ds, index: int, size: tuple[int, int], remove_targets: bool) -> _Background:
    from scipy.ndimage import binary_dilation

    raw = ds.load_raw(index)
    gray = raw["image"].mean(axis=2)
    H, W = gray.shape
    sky = raw["sky_mask"] == 1
    removed = 0
    if remove_targets:
        hole = np.zeros((H, W), bool)
        if "target_mask" in raw:
            hole |= raw["target_mask"] > 0
        for x1, y1, x2, y2 in np.asarray(raw["boxes"]).reshape(-1, 4):
            r0, c0 = max(0, int(math.floor(y1))), max(0, int(math.floor(x1)))
            hole[r0 : int(math.ceil(y2)), c0 : int(math.ceil(x2))] = True
        removed = len(raw["boxes"])
        if hole.any():
            gray = _inpaint(gray, binary_dilation(hole, np.ones((3, 3), bool)))
    h, w = size
    scale = 1.0
    if H < h or W < w:
        scale = max(h / H, w / W)
        nh, nw = max(h, int(math.ceil(H * scale))), max(w, int(math.ceil(W * scale)))
        gray = _resize(gray, nh, nw, nearest=False)
        sky = _resize(sky.astype(np.uint8), nh, nw, nearest=True)
    return _Background(raw["image_id"], gray, sky, scale, removed)


def _camera_path(rng, bg: _Background, size, frames: int, pan, jitter: float):
    """Camera motion of one try: ``(lo, hi, v, j)`` = range of the (y, x) start position,
    velocity (px/frame, slowed so the path fits), jitter amplitude (reduced for tiny margins)."""
    h, w = size
    my, mx = bg.H - h, bg.W - w
    speed = rng.uniform(*pan)
    ang = rng.uniform(0, 2 * math.pi)
    v = np.array([math.sin(ang), math.cos(ang)]) * speed
    j = min(jitter, my / 2, mx / 2)
    span = np.abs(v) * (frames - 1)
    room = np.maximum(np.array([my, mx], float) - 2 * j, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(span > room, room / np.maximum(span, 1e-12), 1.0)
    v = v * float(f.min())
    disp = v * (frames - 1)
    lo = j + np.maximum(0.0, -disp)
    hi = np.array([my, mx], float) - j - np.maximum(0.0, disp)
    hi = np.maximum(hi, lo)
    return lo, hi, v, j


def _window_positions(rng, start, v, j, frames: int, bg: _Background, size) -> np.ndarray:
    """(frames, 2) float top-left (y, x) of the window: start + v·t + jitter, kept in the image."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    jit = rng.uniform(-j, j, size=(frames, 2)) if j > 0 else np.zeros((frames, 2))
    pos = start[None, :] + v[None, :] * t + jit
    pos[:, 0] = np.clip(pos[:, 0], 0, bg.H - size[0])
    pos[:, 1] = np.clip(pos[:, 1], 0, bg.W - size[1])
    return pos


# ---------------------------------------------------------------------- targets
def _appearance(lib: TargetLibrary, index: int, s: int, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Eq. (1)–(3) appearance of library entry ``index`` with longer side ``s`` px: (shape
    (h, w) float32 with peak 1, zero outside the footprint; footprint (h, w) bool, cropped to
    its bounding box; parameters)."""
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


def _draw_appearance(rng, lib: TargetLibrary, lib_pool: list, target_size) -> tuple | None:
    """A target appearance from the split's library entries (10 tries): ``(shape, footprint,
    gaussian params, library index, nominal size)``, or None."""
    for _ in range(10):
        entry = int(lib_pool[rng.integers(len(lib_pool))])
        s_px = int(rng.integers(target_size[0], target_size[1] + 1))
        shape, foot, gparams = _appearance(lib, entry, s_px, rng)
        if shape is not None:
            return shape, foot, gparams, entry, s_px
    return None


def _ring_std(frame: np.ndarray, r: int, c: int, h: int, w: int, ring: tuple[int, int]) -> float:
    H, W = frame.shape
    ri, ro = ring
    R0, R1, C0, C1 = max(0, r - ro), min(H, r + h + ro), max(0, c - ro), min(W, c + w + ro)
    sel = np.ones((R1 - R0, C1 - C0), bool)
    sel[max(0, r - ri - R0) : max(0, r + h + ri - R0), max(0, c - ri - C0) : max(0, c + w + ri - C0)] = False
    vals = frame[R0:R1, C0:C1][sel]
    return float(vals.std()) if vals.size >= 2 else 0.0


def _try_track(rng, shape_hw, sky: np.ndarray, win: np.ndarray, size, speed, accel: float, taken: list, sep: int):
    """Draw one trajectory; return (tops (F,), lefts (F,), params) when valid, else None."""
    F = len(win)
    h, w = shape_hw
    Hs, Ws = size
    cand = np.flatnonzero(sky[0])
    if cand.size == 0:
        return None
    k = int(cand[rng.integers(cand.size)])
    p0 = win[0] + np.array([k // Ws + 0.5, k % Ws + 0.5]) + rng.uniform(-0.5, 0.5, 2)
    sp = rng.uniform(*speed)
    a1 = rng.uniform(0, 2 * math.pi)
    vel = np.array([math.sin(a1), math.cos(a1)]) * sp
    am = rng.uniform(0, accel) if accel > 0 else 0.0
    a2 = rng.uniform(0, 2 * math.pi)
    acc = np.array([math.sin(a2), math.cos(a2)]) * am
    t = np.arange(F, dtype=np.float64)[:, None]
    world = p0[None, :] + vel[None, :] * t + 0.5 * acc[None, :] * t * t
    centre = world - win
    tops = np.floor(centre[:, 0] - h / 2 + 0.5).astype(np.int64)
    lefts = np.floor(centre[:, 1] - w / 2 + 0.5).astype(np.int64)
    if tops.min() < 0 or lefts.min() < 0 or tops.max() + h > Hs or lefts.max() + w > Ws:
        return None
    for other in taken:
        ot, ol, oh, ow = other
        if np.any(
            (tops < ot + oh + sep) & (ot < tops + h + sep) & (lefts < ol + ow + sep) & (ol < lefts + w + sep)
        ):
            return None
    for f in range(F):
        if not sky[f, tops[f] : tops[f] + h, lefts[f] : lefts[f] + w].all():
            return None
    params = {
        "start": [float(p0[1]), float(p0[0])],
        "velocity": [float(vel[1]), float(vel[0])],
        "acceleration": [float(acc[1]), float(acc[0])],
    }
    return tops, lefts, params


def _place_track(rng, kind: str, shape_hw, sky, background, win, size, speed, accel, taken, sep, hard, cache,
                 crossings: dict) -> tuple:
    """``(placed or None, kind)``: up to ``_PATH_TRIES`` trajectories of ``kind``; a crossing
    that this window cannot give (no border / cloud edge reachable) falls back to an ordinary
    track, counted in ``crossings["unavailable"]``."""
    for _ in range(_PATH_TRIES):
        placed = (_try_track(rng, shape_hw, sky, win, size, speed, accel, taken, sep) if kind == "none" else
                  place_crossing_track(rng, kind, shape_hw, sky, background, win, size, speed, accel, taken, sep, hard,
                                       cache))
        if placed is not None:
            return placed, kind
    if kind == "none":
        return None, kind
    crossings["unavailable"] += 1
    return _place_track(rng, "none", shape_hw, sky, background, win, size, speed, accel, taken, sep, hard, cache,
                        crossings)


# ---------------------------------------------------------------------- main
def synthesize_sequences(
    backgrounds_root,
    out_dir,
    sequences: int = 20,
    frames: int = 30,
    seed: int = 0,
    *,
    split: str | Sequence[str] | None = None,
    size: int | Sequence[int] = (256, 256),
    targets: int | Sequence[int] = (1, 3),
    target_size: int | Sequence[int] = (2, 7),
    snr: float | Sequence[float] = (1.0, 10.0),
    speed: float | Sequence[float] = (0.3, 2.0),
    accel: float = 0.05,
    pan: float | Sequence[float] = (0.0, 1.5),
    jitter: float = 0.5,
    noise: float | Sequence[float] = (1.0, 4.0),
    column_noise: float | Sequence[float] = (0.0, 1.5),
    ring: Sequence[int] = (2, 6),
    min_sky: float = 0.2,
    min_separation: int = 3,
    library=None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    remove_real_targets: bool = True,
    snr_bins: int = 9,
    snr_distribution: str = "uniform",
    cross_sky_border: float = 0.0,
    cross_cloud_edge: float = 0.0,
    distractors: int | Sequence[int] = (0, 0),
    distractor_sky: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Generate moving-target sequences on real infrared backgrounds (see the module docstring).

    Args:
        backgrounds_root: DenseSIRST-layout root (``PNGImages``, ``SkySeg/PaletteMask``;
            ``SIRST/BBox`` and ``SIRST/BinaryMask`` for target removal and the library).
        out_dir: output root (created; must be empty unless ``overwrite``; not inside the
            backgrounds root).
        sequences: number of sequences N ≥ 1.
        frames: frames per sequence F ≥ 1.
        seed: random seed (identical arguments → identical files).
        split: background split name (``Splits/<split>.txt``) or explicit list of image ids;
            None → ``"trainval_v2"`` if present, else every image of ``PNGImages``.
        size: frame (H, W) in pixels (an int → square).
        targets: (min, max) moving targets per sequence.
        target_size: (min, max) longer side of a target in pixels.
        snr: (min, max) SNR drawn per track (definition in the module docstring).
        speed: (min, max) target speed in px/frame (world coordinates).
        accel: maximum target acceleration in px/frame².
        pan: (min, max) camera speed in px/frame.
        jitter: camera jitter amplitude in px (uniform per axis and frame).
        noise: (min, max) σ of the white Gaussian sensor noise, grey levels (drawn per sequence).
        column_noise: (min, max) σ of the fixed-pattern column noise, grey levels (per sequence).
        ring: (inner, outer) Chebyshev distances in px of the SNR background ring.
        min_sky: minimum sky fraction of the window wanted in its first, middle and last frame.
        min_separation: minimum gap in px between two targets' boxes in every frame.
        library: :class:`TargetLibrary`, path of a saved one, or None (built from ``split`` of
            the backgrounds and cached, :func:`library_for`).
        val_fraction: fraction of sequences (and of background images) for the ``val`` split.
        test_fraction: fraction of sequences (and of background images) for the ``test`` split
            (0: no test split).
        remove_real_targets: refill the backgrounds' own annotated targets (recommended).
        snr_bins: number of equal-width SNR histogram bins over ``snr``.
        snr_distribution: ``"uniform"`` or ``"log-uniform"`` SNR draw over ``snr``
            (:mod:`irdet.data.sequence_hardness`, as the four switches below).
        cross_sky_border: fraction of tracks built to cross the sky/non-sky border.
        cross_cloud_edge: fraction of tracks built to cross a cloud edge (strong background
            gradient in sky).
        distractors: (min, max) static target-like distractors per sequence (0: none),
            annotated in ``"distractors"`` of the COCO file, not as targets.
        distractor_sky: fraction of distractors on sky (the others on buildings / ground).
        overwrite: allow a non-empty ``out_dir`` (files replaced).
        progress: tqdm progress bar.

    Returns:
        summary dict: ``out_dir``, ``backgrounds``, ``background_split``, ``seed``,
        ``sequences``, ``frames_per_sequence``, ``frames``, ``size``, ``targets`` (tracks
        placed), ``targets_requested``, ``targets_refused``, ``boxes``, ``snr_histogram``
        (``edges``, ``counts`` over placed tracks), ``splits`` (per split: ``sequences``,
        ``frames``, ``boxes``, ``tracks``), ``backgrounds_used`` (sequence → image id),
        ``low_sky_sequences``, ``max_displacement`` (px/frame bound), ``library_size``,
        ``distractors`` / ``distractors_refused`` / ``distractor_boxes`` (0 when off),
        ``crossings`` (tracks per crossing kind), ``params``, ``seconds``. Also written to
        ``out_dir/summary.json`` (without ``out_dir`` and ``seconds``, so that the file depends
        on the arguments only).

    Raises:
        DataError: missing backgrounds / split / sky masks, unusable ``out_dir``.
        ConfigError: bad parameter values, or a library without positive-contrast entries.
    """
    t_start = time.perf_counter()
    from irdet.data.densesirst import DenseSIRST, read_split

    src = Path(backgrounds_root)
    out = Path(out_dir)
    if not (src / "PNGImages").is_dir():
        raise DataError(src, "not a DenseSIRST-layout root: no PNGImages/ folder")
    if not (src / "SkySeg" / "PaletteMask").is_dir():
        raise DataError(src / "SkySeg" / "PaletteMask", "sky masks not found (needed to keep targets in sky)")
    if _inside(out, src) or _inside(src, out):
        raise DataError(out, f"output folder must not contain or lie inside the backgrounds root {src}")
    if out.exists() and not out.is_dir():
        raise DataError(out, "output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(out, "output folder is not empty (choose another or allow overwrite)")

    # parameters
    for name, v in (("sequences", sequences), ("frames", frames)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ConfigError(f"synthesize-sequences: {name} must be a positive integer, got {v!r}")
    sequences, frames, seed = int(sequences), int(frames), int(seed)
    size = _pair("size", size, integer=True, lo=8)
    targets = _pair("targets", targets, integer=True, lo=0)
    target_size = _pair("target_size", target_size, integer=True, lo=1)
    snr = _pair("snr", snr, lo=0.0)
    hard = hardness_params(snr, snr_distribution, cross_sky_border, cross_cloud_edge, distractors, distractor_sky)
    speed = _pair("speed", speed, lo=0.0)
    pan = _pair("pan", pan, lo=0.0)
    noise = _pair("noise", noise, lo=0.0)
    column_noise = _pair("column_noise", column_noise, lo=0.0)
    ring = _pair("ring", ring, integer=True, lo=0)
    if ring[1] <= ring[0]:
        raise ConfigError(f"synthesize-sequences: ring must have outer > inner, got {ring!r}")
    accel, jitter = _nonneg("accel", accel), _nonneg("jitter", jitter)
    min_separation = int(_nonneg("min_separation", min_separation))
    if not 0.0 <= float(min_sky) <= 1.0:
        raise ConfigError(f"synthesize-sequences: min_sky must be in [0, 1], got {min_sky!r}")
    if not (0.0 <= float(val_fraction) and 0.0 <= float(test_fraction) and float(val_fraction) + float(test_fraction) < 1.0):
        raise ConfigError(f"synthesize-sequences: val_fraction and test_fraction must be >= 0 with a sum < 1, "
                          f"got {val_fraction!r} and {test_fraction!r}")
    if int(snr_bins) < 1:
        raise ConfigError(f"synthesize-sequences: snr_bins must be >= 1, got {snr_bins!r}")
    if target_size[1] > min(size):
        raise ConfigError(f"synthesize-sequences: target_size {target_size} does not fit in frames of {size}")

    # backgrounds and library
    if split is None:
        split = "trainval_v2" if (src / "Splits" / "trainval_v2.txt").is_file() else None
    if split is None:
        ids = sorted(p.stem for p in (src / "PNGImages").glob("*.png"))
        split_name = "all"
        if not ids:
            raise DataError(src / "PNGImages", "no .png images")
    elif isinstance(split, str):
        ids, split_name = read_split(src, split), split
    else:
        ids, split_name = [str(i) for i in split], "custom"
        if not ids:
            raise ConfigError("synthesize-sequences: empty list of background ids")
    has_mask = (src / "SIRST" / "BinaryMask").is_dir()
    has_xml = (src / "SIRST" / "BBox").is_dir()
    if remove_real_targets and not has_xml:
        raise DataError(src / "SIRST" / "BBox", "annotations not found (needed to remove the real targets)")
    ds = DenseSIRST(src, ids, sky_mask="palette", target_mask="binary" if has_mask else None)
    if library is None and not has_xml:
        raise DataError(src / "SIRST" / "BBox", "annotations not found (needed to build the target library)")
    lib = library_for(src, split_name if isinstance(split, str) else ids, library, progress=progress)
    positive = [k for k, (a, m) in enumerate(zip(lib.appearance, lib.masks)) if m.any() and float(a[m].mean()) > 0]
    if not positive:
        raise ConfigError("synthesize-sequences: the target library has no positive-contrast entry")

    ss = np.random.SeedSequence(seed).spawn(sequences + 1)
    pool_rng = np.random.default_rng(ss[0])
    order = list(pool_rng.permutation(len(ids)))
    n_test_seq = int(round(test_fraction * sequences))
    n_val_seq = int(round(val_fraction * sequences))
    n_train_seq = sequences - n_val_seq - n_test_seq
    n_test_img = max(1, int(round(test_fraction * len(ids)))) if n_test_seq else 0
    n_val_img = max(1, int(round(val_fraction * len(ids)))) if n_val_seq else 0
    shared_backgrounds = n_test_img + n_val_img >= len(ids)
    if shared_backgrounds:  # too few background images: every split uses all of them
        n_test_img = n_val_img = 0
    pools = {"test": order[:n_test_img] or order, "val": order[n_test_img:n_test_img + n_val_img] or order,
             "train": order[n_test_img + n_val_img:] or order}
    lib_pools = {}
    for name, pool in pools.items():
        pool_ids = {ids[i] for i in pool}
        sel = [k for k in positive if lib.source_ids[k] in pool_ids]
        lib_pools[name] = sel or positive

    for sub in ("images", "masks", "sky", "annotations", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    H, W = size
    coco = {name: {"images": [], "annotations": [], "tracks": [], "distractors": [], "distractor_objects": []}
            for name in SPLITS}
    seq_names = {name: [] for name in SPLITS}
    bg_used: dict[str, str] = {}
    requested = refused = low_sky = d_refused = distractor_id = 0
    crossings = {"none": 0, "sky_border": 0, "cloud_edge": 0, "unavailable": 0}
    snrs: list[float] = []
    image_id = ann_id = track_id = 0
    cache: dict[int, _Background] = {}

    it = range(sequences)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synthesize sequences", unit="seq")
    for s in it:
        rng = np.random.default_rng(ss[s + 1])
        split_out = "train" if s < n_train_seq else "val" if s < n_train_seq + n_val_seq else "test"
        seq = f"seq{s:04d}"
        seq_names[split_out].append(seq)
        pool = pools[split_out]

        # background + camera path with enough sky
        best = None
        for _ in range(_BG_TRIES):
            idx = int(pool[rng.integers(len(pool))])
            if idx not in cache:
                if len(cache) >= 4:
                    cache.pop(next(iter(cache)))
                cache[idx] = _prepare_background(ds, idx, size, remove_real_targets)
            bg = cache[idx]
            lo, hi, v, j = _camera_path(rng, bg, size, frames, pan, jitter)
            for _ in range(_START_TRIES):
                start = rng.uniform(lo, hi)
                win = _window_positions(rng, start, v, j, frames, bg, size)
                fr = min(
                    bg.sky_fraction(int(round(win[f, 0])), int(round(win[f, 1])), H, W)
                    for f in (0, frames // 2, frames - 1)
                )
                if best is None or fr > best[0]:
                    best = (fr, bg, win)
                if fr >= min_sky:
                    break
            if best[0] >= min_sky:
                break
        fr_sky, bg, win = best
        low_sky += int(fr_sky < min_sky)
        bg_used[seq] = bg.image_id

        crops = np.empty((frames, H, W), np.float32)
        sky = np.empty((frames, H, W), bool)
        for f in range(frames):
            crops[f], sky[f] = bg.crop(float(win[f, 0]), float(win[f, 1]), H, W)
        sig_n = rng.uniform(*noise)
        sig_c = rng.uniform(*column_noise)
        column = rng.normal(0.0, sig_c, W).astype(np.float32) if sig_c > 0 else np.zeros(W, np.float32)
        base = crops + column[None, None, :]
        if sig_n > 0:
            base += rng.normal(0.0, sig_n, base.shape).astype(np.float32)

        # static distractors (off by default), then tracks
        taken: list = []
        lib_pool = lib_pools[split_out]
        distractors_seq = []
        if hard.has_distractors:
            n_d = int(rng.integers(hard.distractors[0], hard.distractors[1] + 1))
            distractors_seq, n_refused = place_distractors(
                rng, n_d, lambda: _draw_appearance(rng, lib, lib_pool, target_size), sky, win, size, taken,
                min_separation, max(0, ring[1] - min_separation), hard, snr, _PATH_TRIES)
            d_refused += n_refused
            for d in distractors_seq:
                distractor_id += 1
                d["distractor_id"] = distractor_id
                coco[split_out]["distractor_objects"].append(
                    {"distractor_id": distractor_id, "sequence": seq, **d["info"]})
        n_t = int(rng.integers(targets[0], targets[1] + 1))
        requested += n_t
        tracks = []
        edge_cache: dict = {}
        for _ in range(n_t):
            app = _draw_appearance(rng, lib, lib_pool, target_size)
            if app is None:
                refused += 1
                continue
            shape, foot, gparams, entry, s_px = app
            h, w = shape.shape
            kind = draw_crossing(rng, hard)
            placed, kind = _place_track(rng, kind, (h, w), sky, crops, win, size, speed, accel, taken, min_separation,
                                        hard, edge_cache, crossings)
            if placed is None:
                refused += 1
                continue
            tops, lefts, mparams = placed
            crossings[kind] += 1
            if hard.crossing:
                mparams.setdefault("crossing", "none")
            taken.append((tops, lefts, h, w))
            track_id += 1
            t_snr = draw_snr(rng, snr, hard.snr_distribution)
            snrs.append(t_snr)
            tracks.append({
                "track_id": track_id, "tops": tops, "lefts": lefts, "shape": shape, "foot": foot, "snr": t_snr,
            })
            coco[split_out]["tracks"].append({
                "track_id": track_id, "sequence": seq, "snr": t_snr, "size": [int(w), int(h)],
                "nominal_size": s_px, "library_index": entry, "gaussian": gparams, **mparams,
            })

        # render and write
        for f in range(frames):
            frame = base[f].copy()
            mask = np.zeros((H, W), np.uint8)
            image_id += 1
            fname = f"{seq}/{f}.png"
            for tr in tracks + distractors_seq:  # distractors are drawn exactly as targets, annotated apart
                r, c = int(tr["tops"][f]), int(tr["lefts"][f])
                h, w = tr["shape"].shape
                sigma = max(_ring_std(base[f], r, c, h, w, ring), 1.0)
                frame[r : r + h, c : c + w] += tr["shape"] * (tr["snr"] * sigma)
                bbox = [float(c), float(r), float(w), float(h)]
                if "distractor_id" in tr:
                    coco[split_out]["distractors"].append({
                        "id": len(coco[split_out]["distractors"]) + 1, "image_id": image_id, "bbox": bbox,
                        "distractor_id": tr["distractor_id"], "snr": round(tr["snr"], 4),
                        "on_sky": tr["info"]["on_sky"]})
                    continue
                mask[r : r + h, c : c + w][tr["foot"]] = 255
                ann_id += 1
                ann = {"id": ann_id, "image_id": image_id, "category_id": CATEGORY["id"], "bbox": bbox,
                       "area": float(w * h), "iscrowd": 0, "track_id": tr["track_id"], "snr": round(tr["snr"], 4)}
                if hard.crossing:
                    ann["sky_fraction"] = round(float(sky[f, r : r + h, c : c + w].mean()), 4)
                coco[split_out]["annotations"].append(ann)
            coco[split_out]["images"].append({
                "id": image_id, "file_name": fname, "height": H, "width": W, "sequence": seq, "frame": f,
            })
            img8 = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
            atomic_save_image(out / "images" / seq / f"{f}.png", img8)
            atomic_save_image(out / "masks" / seq / f"{f}.png", mask)
            atomic_save_image(out / "sky" / seq / f"{f}.png", sky[f].astype(np.uint8) * 255)

    params = {
        "size": list(size), "targets": list(targets), "target_size": list(target_size), "snr": list(snr),
        "speed": list(speed), "accel": accel, "pan": list(pan), "jitter": jitter, "noise": list(noise),
        "column_noise": list(column_noise), "ring": list(ring), "min_sky": float(min_sky),
        "min_separation": min_separation, "val_fraction": float(val_fraction), "test_fraction": float(test_fraction),
        "remove_real_targets": bool(remove_real_targets), **hard.as_params(),
    }
    split_counts = {}
    for name in SPLITS:
        if not seq_names[name]:
            continue
        doc = {
            "info": {"description": "irdet synthetic moving infrared small targets", "seed": seed,
                     "backgrounds": str(src), "background_split": split_name, "split": name, "params": params},
            "images": coco[name]["images"],
            "annotations": coco[name]["annotations"],
            "categories": [dict(CATEGORY)],
            "tracks": coco[name]["tracks"],
        }
        if hard.has_distractors:  # static distractors: annotated apart, never targets
            doc["distractors"] = coco[name]["distractors"]
            doc["distractor_objects"] = coco[name]["distractor_objects"]
        atomic_write_json(out / "annotations" / f"{name}.json", doc, indent=None)
        atomic_write_bytes(out / "splits" / f"{name}.txt", "".join(f"{q}\n" for q in seq_names[name]).encode())
        split_counts[name] = {
            "sequences": len(seq_names[name]),
            "frames": len(coco[name]["images"]),
            "boxes": len(coco[name]["annotations"]),
            "tracks": len(coco[name]["tracks"]),
        }
        if hard.has_distractors:
            split_counts[name]["distractors"] = len(coco[name]["distractor_objects"])
            split_counts[name]["distractor_boxes"] = len(coco[name]["distractors"])
    edges = np.linspace(snr[0], snr[1], int(snr_bins) + 1) if snr[1] > snr[0] else np.array([snr[0], snr[0] + 1e-9])
    counts = np.histogram(np.asarray(snrs, float), bins=edges)[0] if snrs else np.zeros(len(edges) - 1, int)
    summary = {
        "out_dir": str(out),
        "backgrounds": str(src),
        "background_split": split_name,
        "background_images": len(ids),
        "shared_backgrounds": shared_backgrounds,
        "seed": seed,
        "sequences": sequences,
        "frames_per_sequence": frames,
        "frames": sequences * frames,
        "size": [H, W],
        "targets": len(snrs),
        "targets_requested": requested,
        "targets_refused": refused,
        "boxes": sum(v["boxes"] for v in split_counts.values()),
        "snr_histogram": {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]},
        "splits": split_counts,
        "backgrounds_used": bg_used,
        "low_sky_sequences": low_sky,
        "max_displacement": speed[1] + accel * max(frames - 1, 0) + pan[1] + 2 * math.sqrt(2) * jitter + math.sqrt(2),
        "library_size": len(lib),
        "distractors": distractor_id,
        "distractors_refused": d_refused,
        "distractor_boxes": sum(len(c["distractors"]) for c in coco.values()),
        "crossings": crossings,
        "params": params,
    }
    atomic_write_json(out / "summary.json", {k: v for k, v in summary.items() if k != "out_dir"})
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    return summary


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def print_summary(summary: dict) -> str:
    """Human-readable report of a :func:`synthesize_sequences` summary (returned, not printed)."""
    hist = summary["snr_histogram"]
    edges, counts = hist["edges"], hist["counts"]
    peak = max(counts) if counts and max(counts) > 0 else 1
    lines = [
        f"synthesized {summary['sequences']} sequences x {summary['frames_per_sequence']} frames "
        f"({summary['frames']} frames of {summary['size'][1]}x{summary['size'][0]} px) -> {summary['out_dir']}",
        f"  backgrounds:  {summary['background_images']} images of '{summary['background_split']}' "
        f"from {summary['backgrounds']} (seed {summary['seed']}, library {summary['library_size']} targets)",
        f"  targets:      {summary['targets']} tracks placed, {summary['targets_refused']} refused "
        f"of {summary['targets_requested']} requested; {summary['boxes']} boxes",
    ]
    for name, c in summary["splits"].items():
        lines.append(
            f"  split {name:<6} {c['sequences']} sequences, {c['frames']} frames, {c['tracks']} tracks, "
            f"{c['boxes']} boxes"
        )
    crossed = {k: v for k, v in summary.get("crossings", {}).items() if k in ("sky_border", "cloud_edge") and v}
    if crossed or summary.get("crossings", {}).get("unavailable"):
        kinds = ", ".join(f"{v} tracks across a {k.replace('_', ' ')}" for k, v in crossed.items())
        lines.append(f"  crossings:    {kinds} ({summary['crossings']['unavailable']} ordinary where the window had none)")
    if summary.get("distractors") or summary.get("distractors_refused"):
        lines.append(f"  distractors:  {summary['distractors']} static distractors placed, "
                     f"{summary['distractors_refused']} refused; {summary['distractor_boxes']} boxes "
                     f"(annotated apart from the targets)")
    if summary.get("low_sky_sequences"):
        lines.append(f"  note:         {summary['low_sky_sequences']} sequence(s) with less sky than min_sky")
    lines.append("  SNR histogram (tracks):")
    for k, c in enumerate(counts):
        bar = "#" * int(round(30 * c / peak))
        lines.append(f"    [{edges[k]:5.2f}, {edges[k + 1]:5.2f})  {c:5d}  {bar}")
    if "seconds" in summary:
        lines.append(f"  time:         {summary['seconds']:.1f} s")
    return "\n".join(lines)
