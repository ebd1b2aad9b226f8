"""False alarms split by background: on sky and on non-sky (DenseSIRST ``SkySeg`` masks).

The BAFE paper's motivating claim (Fig. 1) is that detectors raise their false alarms on
non-sky background (buildings, trees, ground clutter), and that background semantics cut them.
:func:`fa_by_background` counts the false alarms of :func:`irdet.metrics.pdfa.pd_fa` (the same
detections: kept at ``score >= score_thr``, not matched to a target centroid within
``dist_thr`` px) by the background under them.

Rule (irdet's): a false alarm lies on the background of its **centre pixel**: the box
``(xmin, ymin, xmax, ymax)`` (xml numbers, pixel edges of the original image) has its centre
``((xmin + xmax) / 2, (ymin + ymax) / 2)`` in pixel column ``floor`` of the first and row
``floor`` of the second (clipped to the image), and the sky mask's value there (1 = sky,
0 = non-sky) decides. Normalisation: per image by the number of evaluated images (so the sky
and non-sky rates add up to ``fa_per_image``), per megapixel by the sky / non-sky pixel area of
all evaluated images (in units of 10⁶ pixels), i.e. how densely false alarms sit on each kind
of background. Source: irdet extension (paper Fig. 1's claim, measured).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from irdet.metrics.pdfa import unmatched_detections

__all__ = ["fa_by_background", "SkyMasks", "BACKGROUND_KEYS"]

#: keys :func:`fa_by_background` adds to a metrics dict (besides ``fa_background_note`` without masks)
BACKGROUND_KEYS = ("fa_sky_per_image", "fa_nonsky_per_image", "fa_sky_per_mpix", "fa_nonsky_per_mpix",
                   "num_false_alarms_sky", "num_false_alarms_nonsky", "sky_pixels", "nonsky_pixels")


class SkyMasks(Mapping):
    """Lazy ``{image_id: (H, W) bool sky mask}`` of a DenseSIRST-layout root (read on access,
    never all held in memory): ``SkySeg/PaletteMask/<id>.png`` (index 1 = sky), else
    ``SkySeg/BinaryMask/<id>_pixels0.png`` (255 = sky). Ids without either file are absent.

    Raises (on access): DataError for an unreadable mask file (names it).
    Source: DenseSIRST layout; irdet extension.
    """

    def __init__(self, root, ids):
        from pathlib import Path

        from irdet.data.datasets.densesirst import SKY_MASK_FILES

        root = Path(root)
        self._paths = {}
        for image_id in ids:
            for kind in ("palette", "binary"):
                p = root / SKY_MASK_FILES[kind].format(id=image_id)
                if p.is_file():
                    self._paths[image_id] = (p, kind == "palette")
                    break

    def __getitem__(self, image_id: str) -> np.ndarray:
        from irdet.data.io import read_mask

        path, palette = self._paths[image_id]
        m = read_mask(path, palette=palette)
        return m == 1 if palette else m > 127

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def fa_by_background(
    gts: Mapping[str, np.ndarray],
    dets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_sizes: Mapping[str, tuple[int, int]],
    sky_masks: Mapping[str, np.ndarray],
    score_thr: float = 0.5,
    dist_thr: float = 3.0,
) -> dict:
    """False alarms on sky and on non-sky (see the module docstring for the rule).

    Args:
        gts, dets, image_sizes, score_thr, dist_thr: as :func:`irdet.metrics.pdfa.pd_fa`
            (boxes ``(xmin, ymin, xmax, ymax)`` in the xml's numbers, pixels of the original image).
        sky_masks: ``{image_id: (H, W) mask}`` at the original image size, truthy = sky
            (bool, or uint8 with 1 = sky); e.g. :class:`SkyMasks`.

    Returns:
        with a mask for every image of ``gts``: ``fa_sky_per_image`` / ``fa_nonsky_per_image``
        (false alarms on sky / non-sky per image, ≥ 0), ``fa_sky_per_mpix`` /
        ``fa_nonsky_per_mpix`` (per 10⁶ sky / non-sky pixels; None when the images hold no
        pixel of that kind), ``num_false_alarms_sky``, ``num_false_alarms_nonsky``,
        ``sky_pixels``, ``nonsky_pixels`` (ints). Without a mask for some image:
        ``{"fa_background_note": "..."}`` only, saying how many images lack one.

    Raises:
        ValueError: a mask whose size is not the image's, or the errors of ``pd_fa``.

    Source: irdet extension (BAFE paper Fig. 1's claim).
    """
    missing = [k for k in gts if k not in sky_masks]
    if missing:
        return {"fa_background_note": f"no sky mask for {len(missing)} of {len(gts)} images (first: {missing[0]!r}): "
                                      f"false alarms not split by background"}
    fa_sky = fa_non = sky_px = non_px = 0
    for image_id, gt in gts.items():
        h, w = (int(v) for v in image_sizes[image_id])
        sky = np.asarray(sky_masks[image_id]).astype(bool)
        if sky.shape != (h, w):
            raise ValueError(f"sky mask of {image_id!r} is {sky.shape[1]}x{sky.shape[0]}, the image {w}x{h}")
        n_sky = int(sky.sum())
        sky_px += n_sky
        non_px += h * w - n_sky
        if image_id not in dets:
            continue
        boxes, scores = dets[image_id]
        fa = unmatched_detections(gt, boxes, scores, score_thr, dist_thr, image_id)
        if len(fa) == 0:
            continue
        cols = np.clip(np.floor((fa[:, 0] + fa[:, 2]) / 2.0), 0, w - 1).astype(np.int64)
        rows = np.clip(np.floor((fa[:, 1] + fa[:, 3]) / 2.0), 0, h - 1).astype(np.int64)
        on_sky = int(sky[rows, cols].sum())
        fa_sky += on_sky
        fa_non += len(fa) - on_sky
    n = len(gts)
    return {
        "fa_sky_per_image": fa_sky / n if n else 0.0,
        "fa_nonsky_per_image": fa_non / n if n else 0.0,
        "fa_sky_per_mpix": fa_sky / (sky_px / 1e6) if sky_px else None,
        "fa_nonsky_per_mpix": fa_non / (non_px / 1e6) if non_px else None,
        "num_false_alarms_sky": int(fa_sky),
        "num_false_alarms_nonsky": int(fa_non),
        "sky_pixels": int(sky_px),
        "nonsky_pixels": int(non_px),
    }
