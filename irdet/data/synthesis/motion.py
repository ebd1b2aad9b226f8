"""Camera and target motion of the synthetic sequences: pan + jitter of the window, target trajectories, box geometry.

Sizes in pixels, times in frames, positions (y, x) = (row, column); a frame's sky mask is
(H, W) bool, True = sky.

* **Camera**: a window of ``size`` (H, W) moves over the background image with constant
  velocity (speed ~ U[``pan``] px/frame, direction uniform; slowed down if the image is too
  small for the whole path) plus an independent jitter ~ U[−``jitter``, ``jitter``] px per axis
  and frame, always inside the image (:func:`camera_path`, :func:`window_positions`).
* **Targets**: world position ``P(t) = P0 + V·t + A·t²/2`` (speed |V| ~ U[``speed``]
  px/frame, |A| ~ U[0, ``accel``] px/frame², uniform directions, :func:`draw_motion`), ``P0``
  on a random sky pixel of the first frame; the target is drawn at ``P(t) − window(t)`` (box
  top-left rounded to the pixel, :func:`boxes_along`). A trajectory is accepted when, in
  **every** frame, the whole box lies inside the frame, every box pixel is sky in that frame's
  sky mask, and the box keeps ``min_separation`` px from the other targets' boxes
  (:func:`box_clear`); otherwise it is redrawn (:data:`PATH_TRIES` tries), then the target is
  refused. Per-frame displacement of a box is at most
  ``speed[1] + accel·(F − 1) + pan[1] + 2√2·jitter + √2`` px.

Source: irdet's motion model (no public reference).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PATH_TRIES", "camera_path", "window_positions", "draw_motion", "boxes_along", "box_clear", "all_of",
           "try_track"]

#: Trajectories tried per target (and placements per distractor).
PATH_TRIES = 40


def camera_path(rng: np.random.Generator, bg, size, frames: int, pan, jitter: float):
    """Camera motion of one try over a background of ``bg.H`` × ``bg.W`` px.

    Returns:
        ``(lo, hi, v, j)``: range (2,) of the (y, x) start position, velocity (2,) in
        px/frame (slowed so the path fits), jitter amplitude in px (reduced for tiny margins).
    """
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


def window_positions(rng: np.random.Generator, start, v, j, frames: int, bg, size) -> np.ndarray:
    """(frames, 2) float top-left (y, x) of the window: start + v·t + jitter, kept in the image."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    jit = rng.uniform(-j, j, size=(frames, 2)) if j > 0 else np.zeros((frames, 2))
    pos = start[None, :] + v[None, :] * t + jit
    pos[:, 0] = np.clip(pos[:, 0], 0, bg.H - size[0])
    pos[:, 1] = np.clip(pos[:, 1], 0, bg.W - size[1])
    return pos


def draw_motion(rng: np.random.Generator, speed, accel: float) -> tuple[np.ndarray, np.ndarray]:
    """(velocity, acceleration) as (y, x) world vectors: |V| ~ U[speed] px/frame, |A| ~ U[0, accel]
    px/frame² (no draw for ``accel = 0``), directions uniform."""
    sp = rng.uniform(*speed)
    a1 = rng.uniform(0, 2 * math.pi)
    vel = np.array([math.sin(a1), math.cos(a1)]) * sp
    am = rng.uniform(0, accel) if accel > 0 else 0.0
    a2 = rng.uniform(0, 2 * math.pi)
    return vel, np.array([math.sin(a2), math.cos(a2)]) * am


def boxes_along(centre: np.ndarray, h: int, w: int, size) -> tuple[np.ndarray, np.ndarray] | None:
    """Rounded box top-lefts (F,), (F,) of box centres (F, 2) in frame coordinates; None if a
    box leaves the (H, W) = ``size`` frame."""
    tops = np.floor(centre[:, 0] - h / 2 + 0.5).astype(np.int64)
    lefts = np.floor(centre[:, 1] - w / 2 + 0.5).astype(np.int64)
    if tops.min() < 0 or lefts.min() < 0 or tops.max() + h > size[0] or lefts.max() + w > size[1]:
        return None
    return tops, lefts


def box_clear(tops: np.ndarray, lefts: np.ndarray, h: int, w: int, taken: list, sep: int) -> bool:
    """True when the box keeps ≥ ``sep`` px (gap between box edges) from every ``(tops, lefts,
    h, w)`` entry of ``taken`` in every frame."""
    for ot, ol, oh, ow in taken:
        if np.any((tops < ot + oh + sep) & (ot < tops + h + sep) & (lefts < ol + ow + sep) & (ol < lefts + w + sep)):
            return False
    return True


def all_of(mask: np.ndarray, tops, lefts, h: int, w: int) -> bool:
    """True when every box pixel is True in ``mask`` (F, H, W) in its frame."""
    return all(mask[f, tops[f] : tops[f] + h, lefts[f] : lefts[f] + w].all() for f in range(len(tops)))


def try_track(rng: np.random.Generator, shape_hw, sky: np.ndarray, win: np.ndarray, size, speed, accel: float,
              taken: list, sep: int) -> tuple | None:
    """One try of an ordinary trajectory (module docstring).

    Args:
        shape_hw: (h, w) of the target box. sky: (F, H, W) bool sky masks. win: (F, 2) float
            window top-left (y, x) in the image. size: (H, W) frame size. speed: (min, max)
            px/frame. accel: px/frame². taken: boxes to keep clear of. sep: gap in px.

    Returns:
        ``(tops (F,), lefts (F,), params)`` when valid (``params``: ``start``, ``velocity``,
        ``acceleration`` as [x, y]), else None.
    """
    F = len(win)
    h, w = shape_hw
    cand = np.flatnonzero(sky[0])
    if cand.size == 0:
        return None
    k = int(cand[rng.integers(cand.size)])
    p0 = win[0] + np.array([k // size[1] + 0.5, k % size[1] + 0.5]) + rng.uniform(-0.5, 0.5, 2)
    vel, acc = draw_motion(rng, speed, accel)
    t = np.arange(F, dtype=np.float64)[:, None]
    world = p0[None, :] + vel[None, :] * t + 0.5 * acc[None, :] * t * t
    placed = boxes_along(world - win, h, w, size)
    if placed is None or not box_clear(*placed, h, w, taken, sep) or not all_of(sky, *placed, h, w):
        return None
    params = {
        "start": [float(p0[1]), float(p0[0])],
        "velocity": [float(vel[1]), float(vel[0])],
        "acceleration": [float(acc[1]), float(acc[0])],
    }
    return placed[0], placed[1], params
