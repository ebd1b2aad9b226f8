"""Backgrounds of the synthetic sequences: real images made target-free, the split pools, the camera view, sensor noise.

Sizes in pixels, times in frames, positions (y, x) = (row, column).

1. **Background** (:func:`prepare_background`): a DenseSIRST image of the split's pool, made
   grey (channel mean). Its own annotated targets are removed (``remove_real_targets``): their
   mask pixels and boxes, dilated by 1 px, are refilled by normalised convolution
   (:func:`inpaint`: mean of the known pixels in a 7×7 window, grown until every hole is
   filled), so they are neither unlabelled positives nor a bias of the benchmark. An image
   smaller than the window is enlarged (bilinear; sky mask nearest) to cover it.
2. **Pools** (:func:`split_pools`): the background list is shuffled once; its first
   ``round(test_fraction · n)`` images serve the test sequences, the next
   ``round(val_fraction · n)`` (at least one each) the val sequences, the rest train; the
   target-library entries are partitioned the same way by their source image (when a part
   would be empty, all entries are used). Too few images for disjoint pools: every split
   uses all of them.
3. **View** (:func:`choose_view`): camera motion of :mod:`irdet.data.synthesis.motion`. Frames
   are sampled at sub-pixel positions (bilinear); the frame's sky mask is the image's sky
   mask at the nearest pixel offset. Start positions are tried until the window holds
   ≥ ``min_sky`` sky in its first, middle and last frame (else the best try is kept);
   up to 8 background images are tried.
4. **Noise** (:func:`render_background`): per sequence, σ_n ~ U[``noise``] grey levels of
   white Gaussian noise per frame and a fixed-pattern column offset per column ~ N(0, σ_c²),
   σ_c ~ U[``column_noise``] (fixed in sensor coordinates for the whole sequence), added to
   the whole frame.

Source: irdet's benchmark generator (no public reference).
"""

from __future__ import annotations

import math

import numpy as np

from irdet.data.synthesis.motion import camera_path, window_positions

__all__ = ["inpaint", "Background", "prepare_background", "split_pools", "choose_view", "render_background"]

_START_TRIES = 20  # camera start positions tried per background
_BG_TRIES = 8  # background images tried per sequence
_CACHE_SIZE = 4  # prepared backgrounds kept


def inpaint(gray: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` pixels of a (H, W) grey image with the mean of the known pixels around them
    (normalised convolution, 7×7 window, grown ×2 until every hole pixel has a known neighbour)."""
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


class Background:
    """A prepared background: grey image (edge-padded by one row/column for bilinear crops),
    sky mask and its integral image.

    Attributes:
        image_id: the source image. H, W: its size in px (after enlarging). scale: the
        enlargement factor (1.0: none). removed: real targets removed.
    """

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
        """Fraction of sky pixels in the (h, w) window at top-left (y, x)."""
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


def prepare_background(ds, index: int, size: tuple[int, int], remove_targets: bool) -> Background:
    """Background of image ``index`` of a DenseSIRST dataset (sky masks loaded) for windows of
    ``size`` (H, W) px (module docstring, step 1)."""
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
            gray = inpaint(gray, binary_dilation(hole, np.ones((3, 3), bool)))
    h, w = size
    scale = 1.0
    if H < h or W < w:
        scale = max(h / H, w / W)
        nh, nw = max(h, int(math.ceil(H * scale))), max(w, int(math.ceil(W * scale)))
        gray = _resize(gray, nh, nw, nearest=False)
        sky = _resize(sky.astype(np.uint8), nh, nw, nearest=True)
    return Background(raw["image_id"], gray, sky, scale, removed)


def split_pools(order: list, ids: list[str], n_val_seq: int, n_test_seq: int, val_fraction: float,
                test_fraction: float, source_ids: list[str], positive: list[int]) -> tuple[dict, dict, bool]:
    """Background images and library entries of each split (module docstring, step 2).

    Args:
        order: the shuffled positions into ``ids``. ids: the background image ids.
        n_val_seq, n_test_seq: sequences of the val / test split (0: no such split).
        val_fraction, test_fraction: fractions of the images for val / test.
        source_ids: source image id of every library entry. positive: the usable entries.

    Returns:
        ``(pools, lib_pools, shared)``: split → positions into ``ids``; split → library entry
        indices; whether every split uses all images.
    """
    n_test_img = max(1, int(round(test_fraction * len(ids)))) if n_test_seq else 0
    n_val_img = max(1, int(round(val_fraction * len(ids)))) if n_val_seq else 0
    shared = n_test_img + n_val_img >= len(ids)
    if shared:  # too few background images: every split uses all of them
        n_test_img = n_val_img = 0
    pools = {"test": order[:n_test_img] or order, "val": order[n_test_img:n_test_img + n_val_img] or order,
             "train": order[n_test_img + n_val_img:] or order}
    lib_pools = {}
    for name, pool in pools.items():
        pool_ids = {ids[i] for i in pool}
        sel = [k for k in positive if source_ids[k] in pool_ids]
        lib_pools[name] = sel or positive
    return pools, lib_pools, shared


def choose_view(rng: np.random.Generator, pool: list, cache: dict, ds, size, frames: int, pan, jitter: float,
                min_sky: float, remove_targets: bool) -> tuple[float, Background, np.ndarray]:
    """Background and camera path of one sequence with enough sky (module docstring, step 3).

    Args:
        pool: positions of the split's background images in ``ds``. cache: prepared
            backgrounds by position (the oldest dropped beyond 4), updated in place.
        size: (H, W) window. pan: (min, max) camera speed px/frame. jitter: px.
        min_sky: wanted sky fraction in the first, middle and last frame.

    Returns:
        ``(sky fraction, background, window top-lefts (frames, 2))`` of the best try.
    """
    H, W = size
    best = None
    for _ in range(_BG_TRIES):
        idx = int(pool[rng.integers(len(pool))])
        if idx not in cache:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[idx] = prepare_background(ds, idx, size, remove_targets)
        bg = cache[idx]
        lo, hi, v, j = camera_path(rng, bg, size, frames, pan, jitter)
        for _ in range(_START_TRIES):
            start = rng.uniform(lo, hi)
            win = window_positions(rng, start, v, j, frames, bg, size)
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
    return best


def render_background(rng: np.random.Generator, bg: Background, win: np.ndarray, size, noise,
                      column_noise) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames before the targets (module docstring, steps 3–4).

    Returns:
        ``(crops, sky, base)``: (F, H, W) float32 noise-free background frames, (F, H, W) bool
        sky masks, (F, H, W) float32 frames with sensor noise (grey levels, not clipped).
    """
    frames = len(win)
    H, W = size
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
    return crops, sky, base
