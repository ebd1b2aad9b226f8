"""Tiled (sliced) inference: run a single-frame detector on overlapping tiles of the input and
stitch its dense head outputs into whole-input maps, which the head then decodes as usual.

Source: irdet extension (config ``eval.tile``, ``eval.tile_overlap``, ``eval.tile_batch``; CLI
``irdet evaluate|detect --tile H W --tile-overlap PX``). Why: a native-resolution model
(``data.img_size: null``) runs a 1920×1080 frame in one pass; tiles bound the activation
memory by the tile size, and give SAHI-style slicing to those who want it. The ``sahi``
package (PyPI, Python ≥ 3.8) is not used: it wants a ``DetectionModel`` wrapper fed numpy /
PIL slices, merges the slices' *boxes* afterwards (NMS / greedy NMM) and pulls in
opencv-python, shapely, fire, click and termcolor. Here the tiles are slices of the network
input tensor, run batched, and the merge happens on the dense head outputs, before the head's
own decoding.

How (coordinates: pixels of the padded network input, (x, y) = (column, row), pixel edges):

1. Along an axis where the tile is at least the input's side, there is one tile: the input
   itself. Along the others the input (N, 3, H, W) is padded bottom/right with 0 (as
   :class:`irdet.data.transforms.PadToMultiple`) to a multiple of the network stride ``S``
   (:func:`network_stride`: the deepest backbone stage, e.g. 32 for C5), so that every tile
   origin is a multiple of ``S`` and each tile's feature grids are sub-grids of the whole
   input's grids (a feature cell of a tile *is* a cell of the whole input).
2. Tiles of ``tile = (th, tw)`` pixels (multiples of ``S``) start every ``step = tile − overlap``
   pixels, ``step`` rounded down to a multiple of ``S`` (so the real overlap is at least
   ``tile_overlap``); the last tile ends at the (padded) bottom/right edge (:func:`tile_layout`).
   ``tile_batch`` tiles go through the network at a time, so activation memory scales with
   ``tile_batch · th · tw``, not with the frame.
3. Each pair of neighbouring tiles splits their overlap at its middle (a multiple of the
   head's largest stride). The pieces partition the input into *cores*, one per tile: every
   feature cell is taken from the one tile whose core holds it, i.e. from the tile where it
   is at least about ``overlap / 2`` pixels from the tile's inner borders. Image borders are
   the tiles' borders, so they are seen as in the untiled pass.
4. Every output of the head (``cls_scores``, ``bbox_preds``, ``centernesses`` and, for
   BAFE-Net, ``seg_logits``: per level (N, C, H_l, W_l)) is stitched from the cores into
   maps of the untiled shapes; ``bbox_preds`` are distances from a cell's own point, so
   they need no shift. :meth:`irdet.models.heads.fcos.FCOSHead.predict` then decodes them
   exactly as in the untiled pass: ``score_thr``, ``nms_pre`` per level, clamping to the
   image, rescaling to the original image, class-wise NMS (``nms_iou``), ``max_per_img``.
   This is the "drop each tile's border margin, merge by NMS" scheme, done per feature cell
   instead of per box: a target in an overlap is predicted once, by the tile that sees it
   best, and boxes of neighbouring cells are merged by the head's NMS as in one pass.

Exactness: with one tile covering the input, the result is the untiled one exactly. With
several tiles, a cell's outputs equal the untiled ones when the network is local (its value
depends only on the pixels within its receptive field) and the cell is farther than half
that field from its tile's inner borders. **FCOS towers use GroupNorm**, whose statistics are
taken over the whole feature map, so tile outputs of those heads differ from whole-frame
outputs everywhere (slightly, when a tile's statistics are close to the frame's); BAFE-Net's
exchange block chooses channels from map-wide means too. BatchNorm in eval mode, convs,
pooling and the FPN are local. Near the bottom/right edge, exactness also needs the untiled
input to be a multiple of ``S`` (``data.pad_divisor`` a multiple of it, as in every shipped
config: 32). Measure the effect on your model before relying on tiles.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irdet.errors import ConfigError

__all__ = ["Tile", "network_stride", "check_tile_options", "tile_layout", "tiled_forward", "tile_options",
           "DEFAULT_OVERLAP", "DEFAULT_TILE_BATCH"]

#: ``eval.tile_overlap`` default, pixels of the network input
DEFAULT_OVERLAP = 32
#: ``eval.tile_batch`` default: tiles per network call
DEFAULT_TILE_BATCH = 4


class Tile(NamedTuple):
    """One tile: origin ``(y0, x0)`` of its (th, tw) window and its core ``[y_lo, y_hi) × [x_lo, x_hi)``,
    all in pixels of the (stride-padded) network input."""

    y0: int
    x0: int
    y_lo: int
    y_hi: int
    x_lo: int
    x_hi: int


def network_stride(model: nn.Module) -> int:
    """Alignment of tile origins: lcm of ``2^k`` of the deepest backbone level ``C_k`` the
    model builds (``model.backbone.out_levels``) and of the head strides (``model.head.strides``).

    A tile whose origin is a multiple of it sees every stride-2 conv and pooling window at the
    same phase as the whole input. Source: irdet extension.
    """
    strides = [int(s) for s in model.head.strides]
    levels = getattr(model.backbone, "out_levels", ())
    if levels:
        strides.append(2 ** max(int(lv[1:]) for lv in levels))
    return math.lcm(*strides)


def check_tile_options(model: nn.Module, tile: Sequence[int], tile_overlap: int = DEFAULT_OVERLAP,
                       tile_batch: int = DEFAULT_TILE_BATCH) -> None:
    """Check tiling options against ``model`` before inference.

    Args:
        tile: (th, tw) tile size in pixels of the network input (``eval.tile``).
        tile_overlap: minimum overlap of neighbouring tiles in pixels, ≥ 0 (``eval.tile_overlap``).
        tile_batch: tiles per network call, ≥ 1 (``eval.tile_batch``).

    Raises:
        ConfigError: a tile side that is not a positive multiple of :func:`network_stride`, a
            negative overlap or one not smaller than both tile sides, ``tile_batch`` < 1 (one
            line naming the config key and a valid value).

    Source: irdet extension.
    """
    align = network_stride(model)
    if len(tile) != 2 or any(int(t) != t or t < align or t % align for t in tile):
        near = [max(align, int(t) // align * align) for t in tile] if len(tile) == 2 else [align * 8] * 2
        raise ConfigError(f"eval.tile (--tile) = {list(tile)}: tile sides must be positive multiples of the model's "
                          f"stride {align} (e.g. {near})")
    if int(tile_overlap) != tile_overlap or tile_overlap < 0 or tile_overlap >= min(tile):
        raise ConfigError(f"eval.tile_overlap (--tile-overlap) = {tile_overlap}: expected an integer in "
                          f"[0, {min(tile)}) pixels (smaller than the tile {list(tile)})")
    if int(tile_batch) != tile_batch or tile_batch < 1:
        raise ConfigError(f"eval.tile_batch = {tile_batch}: expected an integer >= 1")


def _axis(length: int, tile: int, overlap: int, align: int, cut_align: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """One axis of :func:`tile_layout`: ``(tile side, padded length, [(start, core_lo, core_hi), ...])``."""
    if tile >= length:  # one tile: the input itself, unpadded (the untiled computation)
        return length, length, [(0, 0, length)]
    length = math.ceil(length / align) * align
    step = max(align, (tile - overlap) // align * align)
    starts = [*range(0, length - tile, step), length - tile]
    cuts = [0]
    for a, b in zip(starts, starts[1:]):  # overlap of the tiles at a and b: [b, a + tile)
        cuts.append(int(math.floor((a + tile + b) / (2 * cut_align) + 0.5)) * cut_align)
    cuts.append(length)
    return tile, length, [(s, lo, hi) for s, lo, hi in zip(starts, cuts[:-1], cuts[1:])]


def tile_layout(height: int, width: int, tile: Sequence[int], overlap: int, align: int,
                cut_align: int | None = None) -> tuple[tuple[int, int], tuple[int, int], list[Tile]]:
    """Tiles covering a (height, width) input, row-major.

    Along an axis where the tile side is ≥ the input side there is one tile, the input's
    side, and no padding. Along the other axes the input is padded to a multiple of
    ``align`` and tiles start every ``tile − overlap`` pixels, rounded down to a multiple of
    ``align`` (at least ``align``), the last one ending at the padded edge.

    Args:
        tile: (th, tw) requested tile size in pixels, multiples of ``align``.
        overlap: minimum overlap of neighbouring tiles, pixels (≥ 0, < the tile side).
        align: tile origins are multiples of it (:func:`network_stride`).
        cut_align: core borders are multiples of it (the head's largest stride; default ``align``).

    Returns:
        ``((th, tw), (H_pad, W_pad), tiles)``: the tile size used, the padded input size and
        the :class:`Tile` list; the cores partition ``[0, H_pad) × [0, W_pad)`` and each lies
        inside its tile.

    Source: irdet extension.
    """
    cut_align = cut_align or align
    th, hp, rows = _axis(int(height), int(tile[0]), int(overlap), align, cut_align)
    tw, wp, cols = _axis(int(width), int(tile[1]), int(overlap), align, cut_align)
    return (th, tw), (hp, wp), [Tile(y0, x0, y_lo, y_hi, x_lo, x_hi) for y0, y_lo, y_hi in rows for x0, x_lo, x_hi in cols]


@torch.no_grad()
def tiled_forward(model: nn.Module, images: torch.Tensor, tile: Sequence[int], tile_overlap: int = DEFAULT_OVERLAP,
                  tile_batch: int = DEFAULT_TILE_BATCH) -> dict[str, list[torch.Tensor]]:
    """The head output of ``model`` on ``images``, computed tile by tile and stitched (module docstring).

    Args:
        model: a :class:`irdet.models.detector.Detector` (``model(images) -> (head_out, losses)``,
            ``model.head.strides``, ``model.backbone.out_levels``).
        images: (N, 3, H, W) float32 in [0, 255], the padded network input of the untiled pass
            (padded here, bottom/right with 0, to a multiple of :func:`network_stride` along
            an axis that needs several tiles).
        tile, tile_overlap, tile_batch: see :func:`check_tile_options`.

    Returns:
        dict of per-level lists, level ``l`` (N, C, ceil(H / s_l), ceil(W / s_l)) in the head's
        output dtype: the keys and shapes of ``model(images)[0]`` (``cls_scores``,
        ``bbox_preds``, ``centernesses``, and ``seg_logits`` for BAFE-Net).

    Raises:
        ConfigError: bad tiling options (:func:`check_tile_options`).
        RuntimeError: a head output that is not one map per level of ``model.head.strides``
            of the tile's size at that stride.

    Source: irdet extension.
    """
    check_tile_options(model, tile, tile_overlap, tile_batch)
    strides = [int(s) for s in model.head.strides]
    n, _, h, w = images.shape
    (th, tw), (hp, wp), tiles = tile_layout(h, w, tile, tile_overlap, network_stride(model), max(strides))
    if (hp, wp) != (h, w):
        images = F.pad(images, (0, wp - w, 0, hp - h), value=0.0)
    windows = [(i, t) for i in range(n) for t in tiles]
    stitched: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(windows), int(tile_batch)):
        part = windows[start:start + int(tile_batch)]
        crops = torch.stack([images[i, :, t.y0:t.y0 + th, t.x0:t.x0 + tw] for i, t in part])
        out, _ = model(crops)
        for key, maps in out.items():
            if len(maps) != len(strides):
                raise RuntimeError(f"head output {key} has {len(maps)} maps for {len(strides)} levels")
            for level, (m, s) in enumerate(zip(maps, strides)):
                if tuple(m.shape[-2:]) != (-(-th // s), -(-tw // s)):
                    raise RuntimeError(f"head output {key}[{level}] of shape {tuple(m.shape)} does not fit the tile "
                                       f"{th}x{tw} at stride {s}")
                if len(stitched.setdefault(key, [])) <= level:
                    stitched[key].append(m.new_zeros(n, m.shape[1], -(-h // s), -(-w // s)))
                full = stitched[key][level]
                for j, (i, t) in enumerate(part):
                    r0, r1 = t.y_lo // s, min(-(-t.y_hi // s), full.shape[-2])
                    c0, c1 = t.x_lo // s, min(-(-t.x_hi // s), full.shape[-1])
                    if r1 > r0 and c1 > c0:
                        full[i, :, r0:r1, c0:c1] = m[j, :, r0 - t.y0 // s:r1 - t.y0 // s, c0 - t.x0 // s:c1 - t.x0 // s]
    return stitched


def tile_options(cfg: dict) -> dict:
    """Keyword arguments of :meth:`irdet.models.detector.Detector.predict` from a config's ``eval``
    section: ``{}`` when ``eval.tile`` is null or absent (older checkpoints), else ``tile``,
    ``tile_overlap``, ``tile_batch``. Source: irdet extension."""
    ev = cfg.get("eval") or {}
    if ev.get("tile") is None:
        return {}
    return {"tile": tuple(int(x) for x in ev["tile"]),
            "tile_overlap": int(ev.get("tile_overlap", DEFAULT_OVERLAP)),
            "tile_batch": int(ev.get("tile_batch", DEFAULT_TILE_BATCH))}
