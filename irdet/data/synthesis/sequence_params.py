"""The settings of ``irdet synthesize-sequences``, checked once: :class:`SequenceParams` (irdet extension).

:func:`sequence_params` validates every setting in a fixed order (the first bad one is the
error) and returns a frozen :class:`SequenceParams`; :meth:`SequenceParams.as_json` is the
``params`` record written into the COCO files and the summary. Sizes in pixels, times in
frames, grey levels of 8-bit frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irdet.data.synthesis.hardness import Hardness, hardness_params
from irdet.errors import ConfigError

__all__ = ["SequenceParams", "sequence_params"]


def _pair(name: str, value, *, integer: bool = False, lo: float | None = None) -> tuple:
    """A (min, max) pair (a number → (v, v)), integers or floats, ``lo <= min <= max``."""
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


@dataclass(frozen=True)
class SequenceParams:
    """Checked settings of the generator (the arguments of :func:`sequence_params`)."""

    size: tuple[int, int]
    targets: tuple[int, int]
    target_size: tuple[int, int]
    snr: tuple[float, float]
    speed: tuple[float, float]
    accel: float
    pan: tuple[float, float]
    jitter: float
    noise: tuple[float, float]
    column_noise: tuple[float, float]
    ring: tuple[int, int]
    min_sky: float
    min_separation: int
    val_fraction: float
    test_fraction: float
    remove_real_targets: bool
    snr_bins: int
    hard: Hardness

    def as_json(self) -> dict:
        """The ``params`` record of the output files (lists for pairs; the hardness switches last)."""
        return {
            "size": list(self.size), "targets": list(self.targets), "target_size": list(self.target_size),
            "snr": list(self.snr), "speed": list(self.speed), "accel": self.accel, "pan": list(self.pan),
            "jitter": self.jitter, "noise": list(self.noise), "column_noise": list(self.column_noise),
            "ring": list(self.ring), "min_sky": self.min_sky, "min_separation": self.min_separation,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "remove_real_targets": self.remove_real_targets, **self.hard.as_params(),
        }

    def max_displacement(self, frames: int) -> float:
        """Bound on a box's displacement between two frames, px:
        ``speed[1] + accel·(F − 1) + pan[1] + 2√2·jitter + √2``."""
        return (self.speed[1] + self.accel * max(frames - 1, 0) + self.pan[1] + 2 * math.sqrt(2) * self.jitter
                + math.sqrt(2))


def sequence_params(*, size=(256, 256), targets=(1, 3), target_size=(2, 7), snr=(1.0, 10.0), speed=(0.3, 2.0),
                    accel=0.05, pan=(0.0, 1.5), jitter=0.5, noise=(1.0, 4.0), column_noise=(0.0, 1.5), ring=(2, 6),
                    min_sky=0.2, min_separation=3, val_fraction=0.2, test_fraction=0.0, remove_real_targets=True,
                    snr_bins=9, snr_distribution="uniform", cross_sky_border=0.0, cross_cloud_edge=0.0,
                    distractors=(0, 0), distractor_sky=0.5) -> SequenceParams:
    """Check the generator's settings (a number where a pair is expected means (v, v)).

    Args:
        size: frame (H, W) in pixels (an int → square), ≥ 8.
        targets: (min, max) moving targets per sequence, ≥ 0.
        target_size: (min, max) longer side of a target in pixels, ≥ 1, at most the frame's
            shorter side.
        snr: (min, max) SNR drawn per track (definition: :mod:`irdet.data.synthesis.appearance`).
        speed: (min, max) target speed in px/frame (world coordinates).
        accel: maximum target acceleration in px/frame².
        pan: (min, max) camera speed in px/frame.
        jitter: camera jitter amplitude in px (uniform per axis and frame).
        noise: (min, max) σ of the white Gaussian sensor noise, grey levels (drawn per sequence).
        column_noise: (min, max) σ of the fixed-pattern column noise, grey levels (per sequence).
        ring: (inner, outer) Chebyshev distances in px of the SNR background ring, outer > inner.
        min_sky: minimum sky fraction of the window wanted in its first, middle and last frame, in [0, 1].
        min_separation: minimum gap in px between two targets' boxes in every frame.
        val_fraction, test_fraction: fractions of sequences (and of background images) for the
            ``val`` / ``test`` split, ≥ 0 with a sum < 1 (``test_fraction`` 0: no test split).
        remove_real_targets: refill the backgrounds' own annotated targets (recommended).
        snr_bins: number of equal-width SNR histogram bins over ``snr``, ≥ 1.
        snr_distribution, cross_sky_border, cross_cloud_edge, distractors, distractor_sky: the
            harder benchmark's switches (:func:`irdet.data.synthesis.hardness.hardness_params`).

    Raises:
        ConfigError: the first setting out of range (one line naming it).
    """
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
    val, test = float(val_fraction), float(test_fraction)
    if not (0.0 <= val and 0.0 <= test and val + test < 1.0):
        raise ConfigError(f"synthesize-sequences: val_fraction and test_fraction must be >= 0 with a sum < 1, "
                          f"got {val_fraction!r} and {test_fraction!r}")
    if int(snr_bins) < 1:
        raise ConfigError(f"synthesize-sequences: snr_bins must be >= 1, got {snr_bins!r}")
    if target_size[1] > min(size):
        raise ConfigError(f"synthesize-sequences: target_size {target_size} does not fit in frames of {size}")
    return SequenceParams(size, targets, target_size, snr, speed, accel, pan, jitter, noise, column_noise, ring,
                          float(min_sky), min_separation, val, test,
                          bool(remove_real_targets), int(snr_bins), hard)
