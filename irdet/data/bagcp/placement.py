"""Where BAG-CP pastes: dense regions in the sky and target positions with clearances
(Xiao et al., arXiv 2407.20078, §IV-C: "1–3 regions … 20 × 20 pixels … 8 to 12 targets …
pasted with a spacing of 1 to 2 pixels"; Table III's Cluster and Background-Aware switches).

``cluster=True`` (:func:`place_in_clusters`): each region is a ``region_size × region_size``
window drawn uniformly among the windows that lie in sky (at least ``region_sky_fraction`` of
it; anywhere without a sky raster), overlap no ground-truth box and stay ``max(gap)`` px away
from the regions already drawn. Its targets are then placed one by one, uniformly among the
positions **inside the window** where the target's box keeps a clearance of ``g ~ U{gap}`` px
from every ground-truth box / target pixel and every target placed before; with tight spacing
(``near_gap > 0``) each target after the first of its region is moreover drawn among the
positions within ``near_gap`` px of a target already in the region when there are any — the
literal "pasted with a spacing of 1 to 2 pixels between them": every target has a neighbour
1–2 px away, clusters are compact and more targets fit (a 20×20 window holds at most nine
5×5 boxes 1 px apart). ``cluster=False`` (:func:`place_independently`, Table III rows b, d):
each target placed independently and uniformly anywhere allowed, with the same clearance rule.

A region that cannot be placed (too little sky, image smaller than a region, the image crowded
with targets) or a target that does not fit is refused (None), never forced outside the sky;
the transform counts them. Every search is uniform over the valid positions: random candidates
first (the first valid of uniform candidates is uniform over the valid ones), then an
exhaustive search over integral images. Source: irdet's reading of the paper.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["Placer", "is_clear", "place_in_clusters", "place_independently"]

_FAST_TRIES = 48  # random candidates tried before an exhaustive search


def is_clear(occ: np.ndarray, y: int, x: int, h: int, w: int, g: int) -> bool:
    """True when the h×w box at top-left (y, x), dilated by ``g`` px (clipped to the image),
    covers no taken pixel of ``occ`` ((H, W) bool)."""
    return not occ[max(0, y - g) : y + h + g, max(0, x - g) : x + w + g].any()


class Placer:
    """Placement of regions and targets on an occupancy raster (all coordinates in pixels).

    Args:
        occ: (H, W) bool, True = taken (ground-truth boxes / target pixels; every placed
            target's box is added); modified in place.
        sky: (H, W) bool, where targets may go, or None (anywhere).
        rng: the random stream every position is drawn from.
    """

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

    def _pick(self, flat: np.ndarray) -> int | None:
        """One of the flat indices ``flat``, drawn uniformly; None (nothing drawn) when empty."""
        if flat.size == 0:
            return None
        return int(flat[self.rng.integers(0, flat.size)])

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
        k = self._pick(np.flatnonzero(valid))
        return None if k is None else (k // nx, k % nx)

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
        k = self._pick(np.flatnonzero(valid))
        if k is None:
            return None
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
            if is_clear(occ, y, x, h, w, g):
                occ[y : y + h, x : x + w] = True
                return y, x
        cand = None
        if self.sky is not None:
            cand = self._sky_positions(h, w)
            if cand.size == 0:
                return None
            for k in cand[self.rng.integers(0, cand.size, size=_FAST_TRIES)].tolist():
                y, x = k // nx, k % nx
                if is_clear(occ, y, x, h, w, g):
                    occ[y : y + h, x : x + w] = True
                    return y, x
        # exhaustive
        padded = np.zeros((H + 2 * g + 1, W + 2 * g + 1), np.int32)
        padded[1 + g : 1 + g + H, 1 + g : 1 + g + W] = occ
        ii = padded.cumsum(0).cumsum(1)
        free = self._sums_at(ii, 0, 0, ny, nx, h + 2 * g, w + 2 * g).ravel() == 0
        k = self._pick(np.flatnonzero(free) if cand is None else cand[free[cand]])
        if k is None:
            return None
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


def place_in_clusters(
    placer: Placer,
    sizes: Sequence[tuple[int, int]],
    gaps: Sequence[int],
    per_region: Sequence[int],
    *,
    region_size: int,
    region_sky_fraction: float,
    gt_rects: list,
    margin: int,
    near_gap: int,
) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """Regions, then their targets (the module docstring's ``cluster=True``).

    Args:
        placer: the :class:`Placer` of the sample.
        sizes, gaps: per target ``t`` its (h, w) in pixels and its clearance ``g``; targets
            ``0 .. per_region[0] − 1`` belong to region 0, and so on.
        per_region: number of targets of each region (regions drawn in order).
        region_size: window side R in pixels.
        region_sky_fraction: fraction of a window that must be sky, in (0, 1].
        gt_rects: ground-truth box cells ``(r0, r1, c0, c1)`` no window may overlap.
        margin: distance in pixels a window keeps from the windows drawn before (``max(gap)``).
        near_gap: tight spacing: targets after a region's first within this many pixels of
            one already there when possible; 0 = clearance only.

    Returns:
        ``(placed, windows)``: ``placed`` the targets that fit, ``(t, region index, y, x)``
        (top-left pixel); ``windows`` the regions placed, ``(x1, y1, x2, y2)`` pixel edges,
        in the order of their indices. Refused regions' targets are not placed.
    """
    R = region_size
    min_sky = int(math.ceil(region_sky_fraction * R * R - 1e-9))
    placed, windows = [], []
    t = 0
    for n_k in per_region:
        n_k = int(n_k)
        win = placer.pick_window(R, min_sky, gt_rects, margin)
        if win is None:
            t += n_k
            continue
        y0, x0 = win
        placer.open_region(y0, x0, R, max(margin, near_gap + 1))
        windows.append((x0, y0, x0 + R, y0 + R))
        for _ in range(n_k):
            h, w = sizes[t]
            pos = placer.place_in_region(h, w, gaps[t], near_gap)
            if pos is not None:
                placed.append((t, len(windows) - 1, pos[0], pos[1]))
            t += 1
    return placed, windows


def place_independently(placer: Placer, sizes: Sequence[tuple[int, int]],
                        gaps: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Every target on its own, anywhere allowed (the module docstring's ``cluster=False``).

    Args:
        placer: the :class:`Placer` of the sample.
        sizes, gaps: per target its (h, w) in pixels and its clearance ``g``.

    Returns:
        the targets that fit, ``(t, -1, y, x)`` (top-left pixel).
    """
    placed = []
    for t, (h, w) in enumerate(sizes):
        pos = placer.place_anywhere(h, w, gaps[t])
        if pos is not None:
            placed.append((t, -1, pos[0], pos[1]))
    return placed
