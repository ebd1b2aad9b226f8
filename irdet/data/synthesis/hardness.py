"""Harder synthetic moving-target benchmark: dim targets, border crossings, static distractors (irdet extension).

Switches of :func:`irdet.data.synthesis.sequences.synthesize_sequences` (all off by default, so
that the default benchmark and its files are unchanged; no random number is drawn for a
switch that is off). Sizes in pixels, times in frames, (y, x) = (row, column) in frame
coordinates unless said otherwise; a frame's sky mask is (H, W) bool, True = sky.

* **SNR distribution** (``snr_distribution``): ``"uniform"`` (SNR ~ U[snr], the default) or
  ``"log-uniform"`` (log SNR ~ U[log snr]: as many tracks in [1, 2) as in [10, 20) for
  ``snr = (1, 20)``, so that dim targets are not a small minority of a wide range).
* **Sky/ground border crossings** (``cross_sky_border`` = fraction of tracks): the track is
  built through a sky pixel that touches a non-sky pixel (4-neighbourhood, DenseSIRST sky
  mask of the frame) at a crossing frame t_c ~ U{1 … F−2}, and accepted only if its box centre
  pixel is on sky in some frames and off sky in others; such a track is free to leave the
  sky (its box may cover buildings or ground).
* **Cloud-edge crossings** (``cross_cloud_edge`` = fraction of tracks): the track is built
  through a *cloud-edge pixel* at t_c: a sky pixel whose background gradient magnitude
  (Gaussian derivative, σ = 1 px, of the noise-free background frame) is at least the
  ``edge_quantile`` quantile [0.9] of the frame's sky pixels and at least
  ``edge_min_gradient`` [3] grey levels/px. The whole box stays on sky in every frame, as
  for ordinary tracks. A frame without such pixels gives the try up.
* A track drawn to cross whose 40 tries all fail (a window without sky border or cloud
  edge, e.g. all sky) becomes an ordinary track (counted as ``"unavailable"`` in the
  summary's ``crossings``), so crossings do not lower the number of targets.
* **Static distractors** (``distractors`` = (min, max) per sequence): target-like blobs
  (an appearance drawn exactly like a target's: library entry of the split, size, Gaussian,
  SNR from the same distribution, amplitude set per frame from the same background ring)
  that are fixed in the *world*: they move in the frame with the camera only (pan + jitter,
  drawn at the rounded position, as targets are). A fraction ``distractor_sky`` [0.5] sits on
  sky, the others on non-sky (hot spots on buildings / ground); the whole box is of that
  kind in every frame. They keep at least ``max(min_separation, ring outer radius)`` px
  from every target box in every frame (so no target's SNR ring sees one), and are
  annotated apart from the targets (``"distractors"`` in the COCO file), never as targets:
  only motion tells them apart.

Camera jitter itself is a parameter of the generator (``jitter``: uniform per axis and frame,
sub-pixel bilinear sampling of the background; targets and distractors follow the window at
the rounded pixel position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irdet.data.synthesis.motion import PATH_TRIES, all_of, box_clear, boxes_along, draw_motion, try_track
from irdet.errors import ConfigError

__all__ = [
    "SNR_DISTRIBUTIONS",
    "Hardness",
    "hardness_params",
    "draw_snr",
    "draw_crossing",
    "sky_border_pixels",
    "cloud_edge_pixels",
    "place_crossing_track",
    "place_distractor",
    "place_distractors",
    "place_track",
]

#: accepted values of ``snr_distribution``
SNR_DISTRIBUTIONS = ("uniform", "log-uniform")


@dataclass(frozen=True)
class Hardness:
    """Validated switches of the harder benchmark (see the module docstring)."""

    snr_distribution: str = "uniform"
    cross_sky_border: float = 0.0
    cross_cloud_edge: float = 0.0
    distractors: tuple[int, int] = (0, 0)
    distractor_sky: float = 0.5
    edge_quantile: float = 0.9
    edge_min_gradient: float = 3.0

    @property
    def crossing(self) -> bool:
        """True when some tracks are built to cross a border or a cloud edge."""
        return self.cross_sky_border > 0 or self.cross_cloud_edge > 0

    @property
    def has_distractors(self) -> bool:
        """True when sequences may hold static distractors (max > 0)."""
        return self.distractors[1] > 0

    def as_params(self) -> dict:
        """The switches as written into the ``params`` record of the output files."""
        return {"snr_distribution": self.snr_distribution, "cross_sky_border": self.cross_sky_border,
                "cross_cloud_edge": self.cross_cloud_edge, "distractors": list(self.distractors),
                "distractor_sky": self.distractor_sky, "edge_quantile": self.edge_quantile,
                "edge_min_gradient": self.edge_min_gradient}


def _fraction(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"synthesize-sequences: {name} must be in [0, 1], got {value!r}")
    return v


def hardness_params(snr, snr_distribution: str = "uniform", cross_sky_border: float = 0.0,
                    cross_cloud_edge: float = 0.0, distractors=(0, 0), distractor_sky: float = 0.5,
                    edge_quantile: float = 0.9, edge_min_gradient: float = 3.0) -> Hardness:
    """Validate the switches.

    Args:
        snr: the validated (min, max) SNR range (log-uniform needs min > 0).
        snr_distribution: one of :data:`SNR_DISTRIBUTIONS`.
        cross_sky_border, cross_cloud_edge: fractions of tracks in [0, 1], sum ≤ 1.
        distractors: int or (min, max) static distractors per sequence, 0 ≤ min ≤ max.
        distractor_sky: fraction of distractors on sky, in [0, 1].
        edge_quantile: in [0, 1); edge_min_gradient: ≥ 0 grey levels/px.

    Raises:
        ConfigError: a value out of range (one line naming the parameter).
    """
    if snr_distribution not in SNR_DISTRIBUTIONS:
        raise ConfigError(f"synthesize-sequences: snr_distribution must be one of {', '.join(SNR_DISTRIBUTIONS)}, "
                          f"got {snr_distribution!r}")
    if snr_distribution == "log-uniform" and not snr[0] > 0:
        raise ConfigError(f"synthesize-sequences: a log-uniform SNR needs min > 0, got snr {tuple(snr)}")
    border, edge = _fraction("cross_sky_border", cross_sky_border), _fraction("cross_cloud_edge", cross_cloud_edge)
    if border + edge > 1.0 + 1e-9:
        raise ConfigError(f"synthesize-sequences: cross_sky_border + cross_cloud_edge must be <= 1, "
                          f"got {border} + {edge}")
    if isinstance(distractors, (int, np.integer)) and not isinstance(distractors, bool):
        distractors = (distractors, distractors)
    try:
        d0, d1 = (int(v) for v in distractors)
        ok = all(float(v) == int(v) for v in distractors) and 0 <= d0 <= d1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"synthesize-sequences: distractors must be an integer or a (min, max) pair with "
                          f"0 <= min <= max, got {distractors!r}")
    q = float(edge_quantile)
    if not 0.0 <= q < 1.0:
        raise ConfigError(f"synthesize-sequences: edge_quantile must be in [0, 1), got {edge_quantile!r}")
    g = float(edge_min_gradient)
    if not (g >= 0 and math.isfinite(g)):
        raise ConfigError(f"synthesize-sequences: edge_min_gradient must be >= 0, got {edge_min_gradient!r}")
    return Hardness(snr_distribution, border, edge, (d0, d1), _fraction("distractor_sky", distractor_sky), q, g)


# ---------------------------------------------------------------------- draws
def draw_snr(rng: np.random.Generator, snr: tuple[float, float], distribution: str = "uniform") -> float:
    """One track's SNR: U[snr] (exactly ``rng.uniform(*snr)``) or log-uniform on [snr]."""
    if distribution == "uniform":
        return float(rng.uniform(*snr))
    return float(math.exp(rng.uniform(math.log(snr[0]), math.log(snr[1]))))


def draw_crossing(rng: np.random.Generator, hard: Hardness) -> str:
    """``"sky_border"``, ``"cloud_edge"`` or ``"none"`` for one track (no draw when both fractions are 0)."""
    if not hard.crossing:
        return "none"
    u = rng.random()
    if u < hard.cross_sky_border:
        return "sky_border"
    return "cloud_edge" if u < hard.cross_sky_border + hard.cross_cloud_edge else "none"


# ---------------------------------------------------------------------- crossing points
def sky_border_pixels(sky: np.ndarray) -> np.ndarray:
    """Flat indices of the sky pixels with a non-sky 4-neighbour in a (H, W) bool sky mask
    (pixels at the frame edge only count through their neighbours inside the frame)."""
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(sky, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool), border_value=1)
    return np.flatnonzero(sky & ~inner)


def cloud_edge_pixels(background: np.ndarray, sky: np.ndarray, quantile: float = 0.9,
                      min_gradient: float = 3.0) -> np.ndarray:
    """Flat indices of the cloud-edge pixels of a frame (rule in the module docstring).

    Args:
        background: (H, W) float noise-free background frame, grey levels.
        sky: (H, W) bool sky mask.
        quantile: gradient quantile over the frame's sky pixels.
        min_gradient: absolute floor in grey levels/px (a flat sky has no cloud edge).
    """
    from scipy.ndimage import gaussian_gradient_magnitude

    if not sky.any():
        return np.zeros(0, np.int64)
    grad = gaussian_gradient_magnitude(background.astype(np.float32), sigma=1.0)
    thr = max(float(np.quantile(grad[sky], quantile)), float(min_gradient))
    return np.flatnonzero(sky & (grad >= thr))


def place_crossing_track(rng: np.random.Generator, kind: str, shape_hw, sky: np.ndarray, background: np.ndarray,
                         win: np.ndarray, size, speed, accel: float, taken: list, sep: int, hard: Hardness,
                         cache: dict) -> tuple | None:
    """One try of a track that crosses a sky/non-sky border or a cloud edge.

    Motion model as ordinary tracks (``P(t) = P0 + V·t + A·t²/2``, world coordinates), solved
    for the box centre to lie on a crossing pixel (picked uniformly) at frame t_c.

    Args:
        kind: ``"sky_border"`` or ``"cloud_edge"``.
        shape_hw: (h, w) of the target box.
        sky: (F, H, W) bool sky masks; background: (F, H, W) float noise-free frames.
        win: (F, 2) float window top-left (y, x) in the image.
        size: (H, W) frame size. speed: (min, max) px/frame. accel: px/frame².
        taken: boxes to keep clear of (:func:`~irdet.data.synthesis.motion.box_clear`). sep: gap in px.
        cache: per-sequence dict (crossing pixels per (kind, frame)).

    Returns:
        ``(tops (F,), lefts (F,), params)`` or None when the try fails. ``params`` holds
        ``start``, ``velocity``, ``acceleration`` ([x, y]), ``crossing`` and ``crossing_frame``.
    """
    F = len(win)
    h, w = shape_hw
    t_c = int(rng.integers(1, F - 1)) if F >= 3 else int(rng.integers(F))
    key = (kind, t_c)
    if key not in cache:
        cache[key] = (sky_border_pixels(sky[t_c]) if kind == "sky_border" else
                      cloud_edge_pixels(background[t_c], sky[t_c], hard.edge_quantile, hard.edge_min_gradient))
    pts = cache[key]
    if pts.size == 0:
        return None
    k = int(pts[rng.integers(pts.size)])
    c_world = win[t_c] + np.array([k // size[1] + 0.5, k % size[1] + 0.5]) + rng.uniform(-0.5, 0.5, 2)
    vel, acc = draw_motion(rng, speed, accel)
    t = np.arange(F, dtype=np.float64)[:, None]
    world = c_world[None, :] + vel[None, :] * (t - t_c) + 0.5 * acc[None, :] * (t * t - t_c * t_c)
    centre = world - win
    placed = boxes_along(centre, h, w, size)
    if placed is None or not box_clear(*placed, h, w, taken, sep):
        return None
    tops, lefts = placed
    if kind == "sky_border":
        cy = np.floor(centre[:, 0]).astype(np.int64).clip(0, size[0] - 1)
        cx = np.floor(centre[:, 1]).astype(np.int64).clip(0, size[1] - 1)
        on = sky[np.arange(F), cy, cx]
        if on.all() or not on.any():
            return None
    elif not all_of(sky, tops, lefts, h, w):
        return None
    p0 = world[0]
    return tops, lefts, {
        "start": [float(p0[1]), float(p0[0])], "velocity": [float(vel[1]), float(vel[0])],
        "acceleration": [float(acc[1]), float(acc[0])], "crossing": kind, "crossing_frame": t_c,
    }


def place_distractor(rng: np.random.Generator, shape_hw, sky: np.ndarray, win: np.ndarray, size, taken: list,
                     sep: int, on_sky: bool) -> tuple | None:
    """One try of a static distractor: fixed in the world, so in frame coordinates it follows
    the camera (``P − window(t)``, rounded like targets).

    Args:
        shape_hw: (h, w) box. sky: (F, H, W) bool. win: (F, 2) window top-left (y, x).
        taken: boxes to keep clear of; sep: gap in px.
        on_sky: wanted kind of background; when the first frame has no pixel of that kind
            the other kind is used.

    Returns:
        ``(tops (F,), lefts (F,), params)`` (``position`` [x, y] world centre, ``on_sky``) or
        None when the try fails (box leaves a frame, covers the other kind, or is not clear).
    """
    h, w = shape_hw
    want = sky if on_sky else ~sky
    cand = np.flatnonzero(want[0])
    if cand.size == 0:
        on_sky, want = not on_sky, ~want
        cand = np.flatnonzero(want[0])
    k = int(cand[rng.integers(cand.size)])
    world = win[0] + np.array([k // size[1] + 0.5, k % size[1] + 0.5]) + rng.uniform(-0.5, 0.5, 2)
    placed = boxes_along(world[None, :] - win, h, w, size)
    if placed is None or not box_clear(*placed, h, w, taken, sep) or not all_of(want, *placed, h, w):
        return None
    return placed[0], placed[1], {"position": [float(world[1]), float(world[0])], "on_sky": bool(on_sky)}


def place_distractors(rng: np.random.Generator, n: int, draw_appearance, sky: np.ndarray, win: np.ndarray, size,
                      taken: list, sep: int, gap: int, hard: Hardness, snr,
                      tries: int = PATH_TRIES) -> tuple[list[dict], int]:
    """Place ``n`` static distractors of one sequence (module docstring).

    Args:
        draw_appearance: ``() -> (shape (h, w) float peak 1, footprint (h, w) bool, gaussian
            params, library index, nominal size) | None`` — the targets' appearance draw.
        sky, win, size: as :func:`place_distractor`.
        taken: boxes already placed; each distractor is appended, grown by ``gap`` px on every
            side, so that later boxes keep ``sep + gap`` px from it.
        sep: minimum gap in px. gap: extra gap around distractors.
        hard: the switches (``distractor_sky``, ``snr_distribution``). snr: (min, max).
        tries: placements tried per distractor.

    Returns:
        ``(objects, refused)``: per placed distractor a dict with ``tops``, ``lefts`` (F,),
        ``shape``, ``foot``, ``snr`` and ``info`` (JSON-ready: snr, size, nominal size,
        library index, Gaussian, world position, on_sky); the count that could not be placed.
    """
    objects, refused = [], 0
    for _ in range(n):
        app = draw_appearance()
        if app is None:
            refused += 1
            continue
        shape, foot, gparams, entry, s_px = app
        on_sky = bool(rng.random() < hard.distractor_sky)
        placed = None
        for _ in range(tries):
            placed = place_distractor(rng, shape.shape, sky, win, size, taken, sep, on_sky)
            if placed is not None:
                break
        if placed is None:
            refused += 1
            continue
        tops, lefts, params = placed
        h, w = shape.shape
        taken.append((tops - gap, lefts - gap, h + 2 * gap, w + 2 * gap))
        d_snr = draw_snr(rng, snr, hard.snr_distribution)
        objects.append({"tops": tops, "lefts": lefts, "shape": shape, "foot": foot, "snr": d_snr, "info": {
            "snr": d_snr, "size": [int(w), int(h)], "nominal_size": int(s_px), "library_index": int(entry),
            "gaussian": gparams, **params}})
    return objects, refused


def place_track(rng: np.random.Generator, kind: str, shape_hw, sky, background, win, size, speed, accel: float,
                taken: list, sep: int, hard: Hardness, cache: dict, crossings: dict) -> tuple:
    """Up to :data:`~irdet.data.synthesis.motion.PATH_TRIES` trajectories of ``kind``; a crossing
    that this window cannot give (no border / cloud edge reachable) falls back to an ordinary
    track, counted in ``crossings["unavailable"]`` (module docstring).

    Args:
        kind: ``"none"``, ``"sky_border"`` or ``"cloud_edge"``; other arguments as
            :func:`place_crossing_track`.

    Returns:
        ``(placed or None, kind)``: ``placed`` = ``(tops (F,), lefts (F,), params)``; ``kind``
        the kind actually placed.
    """
    for _ in range(PATH_TRIES):
        placed = (try_track(rng, shape_hw, sky, win, size, speed, accel, taken, sep) if kind == "none" else
                  place_crossing_track(rng, kind, shape_hw, sky, background, win, size, speed, accel, taken, sep, hard,
                                       cache))
        if placed is not None:
            return placed, kind
    if kind == "none":
        return None, kind
    crossings["unavailable"] += 1
    return place_track(rng, "none", shape_hw, sky, background, win, size, speed, accel, taken, sep, hard, cache,
                       crossings)
