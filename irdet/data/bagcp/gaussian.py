"""The rotated anisotropic Gaussian ``G`` of BAG-CP (Xiao et al., arXiv 2407.20078, Eqs. 2–3).

Eq. (3) is :func:`rotate` (offset and rotation of the box coordinates), Eq. (2) is
:func:`gaussian_exponent` (``G = exp(−q)``). :func:`gaussian_weights` (one box) and
:func:`gaussian_weights_batch` (many boxes at once, what :class:`~irdet.data.bagcp.BAGCP`
uses) evaluate them on irdet's box grid; the reference code's grid and normalisation are
:func:`irdet.data.bagcp.reference.reference_gaussian`, built on the same two functions.

Decisions where the paper is silent (irdet)
-------------------------------------------
* Sign of the offset: the paper gives ``ρ ∈ [0, 0.2]`` and no direction; a non-negative
  offset on fixed axes would always move the peak toward one corner (the reference always
  moves it toward the top-left). :class:`~irdet.data.bagcp.BAGCP` draws an independent
  random sign per axis, so the peak moves by up to ``0.2·w`` / ``0.2·h`` px in any direction.
* Box grid: pixel centres of an (h, w) box mapped to ``u = (2j + 1)/w − 1 ∈ (−1, 1)``
  (``v`` alike), so a 1-px box samples the centre ``u = 0``; the pixel offset ``ρx·w`` is
  ``2ρx`` in these units; ``σ`` is in these units; the rotation (Eq. 3) is about the offset
  centre ``μ``.
* ``peak_norm=True`` (default): ``G`` is divided by its maximum over the box's pixels, so
  the brightest pasted pixel gets exactly ``λ·B`` and λ alone sets the brightness (Eq. 2
  peaks at 1 at its continuous centre, which a 1–5 px grid rarely samples: an unnormalised
  2×2 box would be dimmed to ~30 %). Computed in log space: never 0/0, no NaN even for a 1×1
  box or ``σ → 0`` (σ is floored at 1e-6). The reference min–max normalises instead (0/0 =
  NaN for 1-px boxes, zero weight on the darkest corner).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["rotate", "gaussian_exponent", "gaussian_weights", "gaussian_weights_batch"]

_SIGMA_FLOOR = 1e-6


def rotate(x, y, mu_x, mu_y, theta):
    """Box coordinates relative to the Gaussian's centre, rotated: Eq. (3) of BAG-CP.

    ``[x', y'] = R(θ)·[x − μx, y − μy]`` with ``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]``.

    Args:
        x, y: coordinates (arrays broadcastable against each other and the other arguments;
            irdet's box grid: normalised pixel centres in (−1, 1)).
        mu_x, mu_y: the centre (numbers or broadcastable arrays), in the units of ``x``, ``y``.
        theta: rotation in degrees; a number (cos / sin by :mod:`math`) or an array
            broadcastable against ``x`` (cos / sin by numpy, element-wise).

    Returns:
        ``(x', y')``, float64 arrays of the broadcast shape.

    Source: Xiao et al., arXiv 2407.20078, Eq. (3).
    """
    dx = x - mu_x
    dy = y - mu_y
    if np.ndim(theta) == 0:
        t = math.radians(float(theta))
        c, s = math.cos(t), math.sin(t)
    else:
        t = np.radians(np.asarray(theta, np.float64))
        c, s = np.cos(t), np.sin(t)
    return c * dx - s * dy, s * dx + c * dy


def gaussian_exponent(xr, yr, var_x, var_y):
    """The exponent ``q`` of the Gaussian of Eq. (2) of BAG-CP, ``G = exp(−q)``.

    ``q = x'²/(2σx²) + y'²/(2σy²)`` over the rotated coordinates of :func:`rotate` (the
    paper's ``(x − ρx·w)``, ``(y − ρy·h)`` are :func:`rotate`'s ``x − μx``, ``y − μy``).
    Returned before the exponential so that callers can normalise in log space.

    Args:
        xr, yr: rotated coordinates (broadcastable arrays).
        var_x, var_y: the variances ``σx²``, ``σy²`` (> 0; numbers or broadcastable arrays).

    Returns:
        ``q`` ≥ 0, float64, of the broadcast shape.

    Source: Xiao et al., arXiv 2407.20078, Eq. (2).
    """
    return xr * xr / (2.0 * var_x) + yr * yr / (2.0 * var_y)


def _weights(u, v, mu_x, mu_y, sigma_x, sigma_y, theta, *, peak_norm: bool, inside=None, axes=None) -> np.ndarray:
    """``G`` of Eqs. (2)–(3) on the grid ``u`` (columns), ``v`` (rows): float32, 0 outside
    ``inside``; with ``peak_norm`` divided by its maximum over ``axes`` (in log space)."""
    xr, yr = rotate(u, v, mu_x, mu_y, theta)
    q = gaussian_exponent(xr, yr, sigma_x * sigma_x, sigma_y * sigma_y)
    if inside is not None:
        q = np.where(inside, q, np.inf)
    if peak_norm:
        q = q - (q.min() if axes is None else q.min(axis=axes, keepdims=True))
    return np.exp(-q).astype(np.float32)


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
    """Rotated anisotropic Gaussian over an (h, w) box, Eqs. (2)–(3) on irdet's box grid.

    ``G = exp(−x'²/(2σx²) − y'²/(2σy²))`` with ``[x', y'] = R(θ)·[u − μx, v − μy]``, where
    ``u = (2j + 1)/w − 1`` and ``v = (2i + 1)/h − 1`` are the pixel centres on the box grid
    normalised to [−1, 1] and ``μ = (2ρx, 2ρy)`` is the centre offset (``ρx·w``, ``ρy·h`` px).

    Args:
        h, w: box size in pixels (≥ 1).
        rho_x, rho_y: signed relative centre offsets (paper: |ρ| ≤ 0.2).
        sigma_x, sigma_y: spreads in normalised box units (paper 0.3–0.6; floored at 1e-6).
        theta: rotation in degrees (paper −90..90).
        peak_norm: divide by the maximum over the pixels (see the module docstring).

    Returns:
        (h, w) float32 in (0, 1] with ``peak_norm`` (maximum exactly 1), else in [0, 1].
        Never NaN.

    Source: Xiao et al., arXiv 2407.20078, Eqs. (2)–(3); grid and normalisation irdet's.
    """
    u = (2.0 * np.arange(w) + 1.0) / w - 1.0
    v = (2.0 * np.arange(h) + 1.0) / h - 1.0
    sx, sy = max(float(sigma_x), _SIGMA_FLOOR), max(float(sigma_y), _SIGMA_FLOOR)
    return _weights(u[None, :], v[:, None], 2.0 * rho_x, 2.0 * rho_y, sx, sy, theta, peak_norm=peak_norm)


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
    """:func:`gaussian_weights` for n boxes at once.

    Args:
        h, w: (n,) box sizes in pixels (1 ≤ h, w ≤ ``size``).
        rho_x, rho_y, sigma_x, sigma_y, theta: (n,) parameters, as :func:`gaussian_weights`.
        size: side of the common grid.
        peak_norm: as :func:`gaussian_weights`, per box.

    Returns:
        (n, size, size) float32; box ``i`` in ``[i, :h[i], :w[i]]``, the rest 0.

    Source: Xiao et al., arXiv 2407.20078, Eqs. (2)–(3); grid and normalisation irdet's.
    """
    h = np.asarray(h, np.float64)[:, None, None]
    w = np.asarray(w, np.float64)[:, None, None]
    k = np.arange(size, dtype=np.float64)
    u = (2.0 * k[None, None, :] + 1.0) / w - 1.0  # (n, 1, size)
    v = (2.0 * k[None, :, None] + 1.0) / h - 1.0  # (n, size, 1)
    mu_x = 2.0 * np.asarray(rho_x, np.float64)[:, None, None]
    mu_y = 2.0 * np.asarray(rho_y, np.float64)[:, None, None]
    theta = np.asarray(theta, np.float64)[:, None, None]
    sx = np.maximum(np.asarray(sigma_x, np.float64), _SIGMA_FLOOR)[:, None, None]
    sy = np.maximum(np.asarray(sigma_y, np.float64), _SIGMA_FLOOR)[:, None, None]
    inside = (k[None, :, None] < h) & (k[None, None, :] < w)
    return _weights(u, v, mu_x, mu_y, sx, sy, theta, peak_norm=peak_norm, inside=inside, axes=(1, 2))
