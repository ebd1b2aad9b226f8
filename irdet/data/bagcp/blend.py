"""The blend of a pasted target into its new background: Eq. (1) of BAG-CP (Xiao et al., arXiv
2407.20078), ``T_new = T_back + B_box · λ · G``, on a float working copy of the image.

``B_box`` is what the caller pastes: :class:`~irdet.data.bagcp.BAGCP` pastes the target's
contrast over its source background inside its footprint (:mod:`irdet.data.bagcp.library`),
the reference variant the raw source pixels of the whole box rectangle
(:mod:`irdet.data.bagcp.reference`). ``G`` comes from :mod:`irdet.data.bagcp.gaussian`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["blend", "float_canvas", "restore_dtype"]


def blend(
    canvas: np.ndarray,
    y: int,
    x: int,
    appearance: np.ndarray,
    lam: float = 1.0,
    g: np.ndarray | None = None,
    *,
    footprint: np.ndarray | None = None,
    value_range: Sequence[float] = (0.0, 255.0),
) -> None:
    """Paste one target into ``canvas`` in place: Eq. (1) of BAG-CP, ``T_new = T_back + B·λ·G``.

    The same value is added to every channel; the result is clipped to ``value_range``.

    Args:
        canvas: (C, H, W) float image (a writable numpy view, values in ``value_range``).
        y, x: top-left pixel of the target's (h, w) box; the box lies inside the image.
        appearance: (h, w) ``B_box`` (grey levels, signed).
        lam: λ (paper U[0.5, 1]).
        g: (h, w) Gaussian weights ``G`` (Eqs. 2–3), or None for a hard paste
            (``λ ≡ G ≡ 1``, Table III's rows without the Gaussian: ``T_new = T_back + B``;
            ``lam`` is not used).
        footprint: (h, w) bool, the only pixels that change; None: the whole box.
        value_range: (lo, hi) clip range (images in [0, 255]).

    Source: Xiao et al., arXiv 2407.20078, Eq. (1); the clip and the footprint are irdet's.
    """
    lo, hi = value_range
    delta = appearance if g is None else appearance * (lam * g)
    h, w = appearance.shape
    if footprint is None:
        np.clip(canvas[:, y : y + h, x : x + w] + delta, lo, hi, out=canvas[:, y : y + h, x : x + w])
        return
    patch = canvas[:, y : y + h, x : x + w]
    vals = patch[:, footprint]
    vals += delta[footprint]
    np.clip(vals, lo, hi, out=vals)
    patch[:, footprint] = vals


def float_canvas(image: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """A float working copy of a (C, H, W) image and its numpy view (float images keep their
    dtype, integer ones become float32); the input is not modified."""
    img_t = image.as_subclass(torch.Tensor)
    work = img_t.detach().clone() if img_t.is_floating_point() else img_t.to(torch.float32)
    return work, work.numpy()


def restore_dtype(work: torch.Tensor, image: torch.Tensor, value_range: Sequence[float]) -> torch.Tensor:
    """The working copy back in the input image's dtype: unchanged for a float image, else
    rounded, clamped to ``value_range`` and cast (uint8 images stay uint8)."""
    img_t = image.as_subclass(torch.Tensor)
    if img_t.is_floating_point():
        return work
    lo, hi = value_range
    return work.round_().clamp_(lo, hi).to(img_t.dtype)
