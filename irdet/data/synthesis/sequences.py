"""``irdet synthesize-sequences``: moving infrared small targets on real infrared backgrounds (irdet benchmark generator).

:func:`synthesize_sequences` turns DenseSIRST images and their sky masks (``SkySeg``) into short
videos in irdet's sequence layout (:mod:`irdet.data.synthesis.coco_writer`: frames, target and
sky masks, one COCO file and one split list per split), read by
``SequenceDataset.from_layout(out_dir, split, dataset="irdet")``, plus
``out_dir/summary.json`` (the summary returned, without ``out_dir`` and timing).

Splits: ``"train"`` (the first sequences), ``"val"`` (the next ``n_val = round(val_fraction ·
sequences)``) and, with ``test_fraction > 0``, ``"test"`` (the last ``round(test_fraction ·
sequences)``: a held-out split for reporting, so that checkpoints are selected on val only).
Their background images and target-library entries are disjoint
(:func:`irdet.data.synthesis.backgrounds.split_pools`).

One sequence, step by step (all sizes in pixels, times in frames):

1. background image of the split's pool, its real targets removed, and the camera window's
   path with enough sky (:mod:`~irdet.data.synthesis.backgrounds`, camera motion
   :mod:`~irdet.data.synthesis.motion`);
2. sensor noise on the background frames (:func:`~irdet.data.synthesis.backgrounds.render_background`);
3. static distractors, when asked for (:mod:`~irdet.data.synthesis.hardness`);
4. ``n ~ U{targets}`` tracks: BAG-CP appearance, Eqs. (1)–(3)
   (:mod:`~irdet.data.synthesis.appearance`), a trajectory that stays on sky and apart from the
   other boxes (:mod:`~irdet.data.synthesis.motion`; border / cloud-edge crossings:
   :mod:`~irdet.data.synthesis.hardness`), an SNR ~ U[``snr``] (or log-uniform);
5. every frame: each object added with the amplitude that gives its SNR against that frame's
   background ring (:func:`~irdet.data.synthesis.appearance.ring_std`), the frame clipped to
   [0, 255] and rounded to 8 bits (a target on a near-saturated sky may lose some contrast to
   clipping), then written with its boxes.

Randomness: ``numpy.random.SeedSequence(seed).spawn(sequences + 1)``: child 0 draws the
background pools, child ``k + 1`` everything of sequence ``k``, in the order above; the same
arguments give byte-identical files. Every file is written atomically (:mod:`irdet.data.io`).

Sources: BAG-CP appearance and Eqs. (1)–(3) from the BAFE-Net paper (Xiao et al., arXiv
2407.20078), output layout after the SSTNet/Tridos public layout
(:mod:`irdet.data.datasets.sequence_layouts`); camera, motion, noise and SNR model are irdet's
(no public reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from irdet.data.io import atomic_write_json
from irdet.data.synthesis.appearance import draw_appearance, library_for, positive_entries, ring_std
from irdet.data.synthesis.backgrounds import choose_view, render_background, split_pools
from irdet.data.synthesis.coco_writer import SequenceCocoWriter
from irdet.data.synthesis.common import check_output_folder, check_source_root, progress_range
from irdet.data.synthesis.hardness import draw_crossing, draw_snr, place_distractors, place_track
from irdet.data.synthesis.motion import PATH_TRIES
from irdet.data.synthesis.sequence_params import SequenceParams, sequence_params
from irdet.errors import ConfigError, DataError

__all__ = ["synthesize_sequences", "print_summary"]


@dataclass
class _Run:
    """What the sequences of one run share: settings, sources, the writer and the counts."""

    p: SequenceParams
    frames: int
    ds: object
    lib: object
    pools: dict
    lib_pools: dict
    writer: SequenceCocoWriter
    cache: dict = field(default_factory=dict)
    requested: int = 0
    refused: int = 0
    low_sky: int = 0
    distractors_refused: int = 0
    crossings: dict = field(default_factory=lambda: {"none": 0, "sky_border": 0, "cloud_edge": 0, "unavailable": 0})
    snrs: list = field(default_factory=list)
    backgrounds_used: dict = field(default_factory=dict)


def _background_ids(src: Path, split) -> tuple[list[str], str]:
    """(background image ids, split name) of ``split`` (name, id list or None)."""
    from irdet.data.datasets.densesirst import read_split

    if split is None:
        split = "trainval_v2" if (src / "Splits" / "trainval_v2.txt").is_file() else None
    if split is None:
        ids = sorted(p.stem for p in (src / "PNGImages").glob("*.png"))
        if not ids:
            raise DataError(src / "PNGImages", "no .png images")
        return ids, "all"
    if isinstance(split, str):
        return read_split(src, split), split
    ids = [str(i) for i in split]
    if not ids:
        raise ConfigError("synthesize-sequences: empty list of background ids")
    return ids, "custom"


def _distractors(run: _Run, rng, seq: str, split: str, draw, sky, win, taken: list) -> list[dict]:
    """Static distractors of one sequence (none when switched off: no draw)."""
    p, hard = run.p, run.p.hard
    if not hard.has_distractors:
        return []
    n_d = int(rng.integers(hard.distractors[0], hard.distractors[1] + 1))
    objects, n_refused = place_distractors(rng, n_d, draw, sky, win, p.size, taken, p.min_separation,
                                           max(0, p.ring[1] - p.min_separation), hard, p.snr, PATH_TRIES)
    run.distractors_refused += n_refused
    for d in objects:
        d["distractor_id"] = run.writer.add_distractor_object(split, seq, d["info"])
    return objects


def _tracks(run: _Run, rng, seq: str, split: str, draw, sky, crops, win, taken: list) -> list[dict]:
    """The target tracks of one sequence (appearance, trajectory, SNR), recorded in the writer."""
    p, hard = run.p, run.p.hard
    n_t = int(rng.integers(p.targets[0], p.targets[1] + 1))
    run.requested += n_t
    tracks: list[dict] = []
    edge_cache: dict = {}
    for _ in range(n_t):
        app = draw()
        if app is None:
            run.refused += 1
            continue
        shape, foot, gparams, entry, s_px = app
        h, w = shape.shape
        kind = draw_crossing(rng, hard)
        placed, kind = place_track(rng, kind, (h, w), sky, crops, win, p.size, p.speed, p.accel, taken,
                                   p.min_separation, hard, edge_cache, run.crossings)
        if placed is None:
            run.refused += 1
            continue
        tops, lefts, mparams = placed
        run.crossings[kind] += 1
        if hard.crossing:
            mparams.setdefault("crossing", "none")
        taken.append((tops, lefts, h, w))
        t_snr = draw_snr(rng, p.snr, hard.snr_distribution)
        run.snrs.append(t_snr)
        track_id = run.writer.add_track(split, seq, t_snr, (w, h), s_px, entry, gparams, mparams)
        tracks.append({"track_id": track_id, "tops": tops, "lefts": lefts, "shape": shape, "foot": foot, "snr": t_snr})
    return tracks


def _render(run: _Run, seq: str, split: str, base, sky, objects: list[dict]) -> None:
    """Add every object to every frame at its SNR amplitude and write frames and boxes."""
    p, writer = run.p, run.writer
    for f in range(run.frames):
        frame = base[f].copy()
        mask = np.zeros(p.size, np.uint8)
        image_id = writer.add_image(split, seq, f, p.size)
        for tr in objects:  # distractors are drawn exactly as targets, annotated apart
            r, c = int(tr["tops"][f]), int(tr["lefts"][f])
            h, w = tr["shape"].shape
            sigma = max(ring_std(base[f], r, c, h, w, p.ring), 1.0)
            frame[r : r + h, c : c + w] += tr["shape"] * (tr["snr"] * sigma)
            bbox = [float(c), float(r), float(w), float(h)]
            if "distractor_id" in tr:
                writer.add_distractor_box(split, image_id, bbox, tr["distractor_id"], tr["snr"], tr["info"]["on_sky"])
                continue
            mask[r : r + h, c : c + w][tr["foot"]] = 255
            sky_fraction = float(sky[f, r : r + h, c : c + w].mean()) if p.hard.crossing else None
            writer.add_box(split, image_id, bbox, tr["track_id"], tr["snr"], sky_fraction)
        writer.write_frame(seq, f, frame, mask, sky[f])


def _sequence(run: _Run, rng: np.random.Generator, seq: str, split: str) -> None:
    """Draw, render and write one sequence (module docstring, steps 1–5)."""
    p = run.p
    run.writer.add_sequence(split, seq)
    fr_sky, bg, win = choose_view(rng, run.pools[split], run.cache, run.ds, p.size, run.frames, p.pan, p.jitter,
                                  p.min_sky, p.remove_real_targets)
    run.low_sky += int(fr_sky < p.min_sky)
    run.backgrounds_used[seq] = bg.image_id
    crops, sky, base = render_background(rng, bg, win, p.size, p.noise, p.column_noise)
    taken: list = []
    lib_pool = run.lib_pools[split]

    def draw():
        return draw_appearance(rng, run.lib, lib_pool, p.target_size)

    distractors = _distractors(run, rng, seq, split, draw, sky, win, taken)
    tracks = _tracks(run, rng, seq, split, draw, sky, crops, win, taken)
    _render(run, seq, split, base, sky, tracks + distractors)


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
        library: :class:`~irdet.data.bagcp.TargetLibrary`, path of a saved one, or None
            (built from ``split`` of the backgrounds and cached,
            :func:`irdet.data.synthesis.appearance.library_for`).
        size, targets, target_size, snr, speed, accel, pan, jitter, noise, column_noise, ring,
            min_sky, min_separation, val_fraction, test_fraction, remove_real_targets,
            snr_bins, snr_distribution, cross_sky_border, cross_cloud_edge, distractors,
            distractor_sky: the generator's settings, each described with its unit in
            :func:`irdet.data.synthesis.sequence_params.sequence_params`.
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
    from irdet.data.datasets.densesirst import DenseSIRST

    src = Path(backgrounds_root)
    out = Path(out_dir)
    check_source_root(src)
    if not (src / "SkySeg" / "PaletteMask").is_dir():
        raise DataError(src / "SkySeg" / "PaletteMask", "sky masks not found (needed to keep targets in sky)")
    check_output_folder(out, src, overwrite, "the backgrounds root")
    for name, v in (("sequences", sequences), ("frames", frames)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ConfigError(f"synthesize-sequences: {name} must be a positive integer, got {v!r}")
    sequences, frames, seed = int(sequences), int(frames), int(seed)
    p = sequence_params(size=size, targets=targets, target_size=target_size, snr=snr, speed=speed, accel=accel,
                        pan=pan, jitter=jitter, noise=noise, column_noise=column_noise, ring=ring, min_sky=min_sky,
                        min_separation=min_separation, val_fraction=val_fraction, test_fraction=test_fraction,
                        remove_real_targets=remove_real_targets, snr_bins=snr_bins, snr_distribution=snr_distribution,
                        cross_sky_border=cross_sky_border, cross_cloud_edge=cross_cloud_edge,
                        distractors=distractors, distractor_sky=distractor_sky)

    # backgrounds and library
    ids, split_name = _background_ids(src, split)
    has_mask = (src / "SIRST" / "BinaryMask").is_dir()
    has_xml = (src / "SIRST" / "BBox").is_dir()
    if p.remove_real_targets and not has_xml:
        raise DataError(src / "SIRST" / "BBox", "annotations not found (needed to remove the real targets)")
    ds = DenseSIRST(src, ids, sky_mask="palette", target_mask="binary" if has_mask else None)
    if library is None and not has_xml:
        raise DataError(src / "SIRST" / "BBox", "annotations not found (needed to build the target library)")
    lib = library_for(src, split_name if isinstance(split, str) else ids, library, progress=progress)
    positive = positive_entries(lib)
    if not positive:
        raise ConfigError("synthesize-sequences: the target library has no positive-contrast entry")

    ss = np.random.SeedSequence(seed).spawn(sequences + 1)
    order = list(np.random.default_rng(ss[0]).permutation(len(ids)))
    n_test_seq = int(round(p.test_fraction * sequences))
    n_val_seq = int(round(p.val_fraction * sequences))
    n_train_seq = sequences - n_val_seq - n_test_seq
    pools, lib_pools, shared_backgrounds = split_pools(order, ids, n_val_seq, n_test_seq, p.val_fraction,
                                                       p.test_fraction, lib.source_ids, positive)
    writer = SequenceCocoWriter(out, crossing=p.hard.crossing, distractors=p.hard.has_distractors)
    run = _Run(p, frames, ds, lib, pools, lib_pools, writer)
    for s in progress_range(sequences, "synthesize sequences", "seq", progress):
        split_out = "train" if s < n_train_seq else "val" if s < n_train_seq + n_val_seq else "test"
        _sequence(run, np.random.default_rng(ss[s + 1]), f"seq{s:04d}", split_out)

    params = p.as_json()
    info = {"description": "irdet synthetic moving infrared small targets", "seed": seed,
            "backgrounds": str(src), "background_split": split_name}
    split_counts = writer.write(info, params)
    snr_lo, snr_hi = p.snr
    edges = np.linspace(snr_lo, snr_hi, p.snr_bins + 1) if snr_hi > snr_lo else np.array([snr_lo, snr_lo + 1e-9])
    counts = np.histogram(np.asarray(run.snrs, float), bins=edges)[0] if run.snrs else np.zeros(len(edges) - 1, int)
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
        "size": list(p.size),
        "targets": len(run.snrs),
        "targets_requested": run.requested,
        "targets_refused": run.refused,
        "boxes": sum(v["boxes"] for v in split_counts.values()),
        "snr_histogram": {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]},
        "splits": split_counts,
        "backgrounds_used": run.backgrounds_used,
        "low_sky_sequences": run.low_sky,
        "max_displacement": p.max_displacement(frames),
        "library_size": len(lib),
        "distractors": writer.distractor_id,
        "distractors_refused": run.distractors_refused,
        "distractor_boxes": writer.distractor_boxes,
        "crossings": run.crossings,
        "params": params,
    }
    atomic_write_json(out / "summary.json", {k: v for k, v in summary.items() if k != "out_dir"})
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    return summary


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
