"""Seeded synthesis writes exactly the recorded files (irdet.data.synthesis: images and sequences).

``irdet synthesize`` and ``irdet synthesize-sequences`` promise the same files for the same
arguments (same random draws in the same order). Three tiny runs on real DenseSIRST images
(skipped without the data, failing instead under IRDET_REQUIRE_DATA=1) are compared file by
file with digests recorded from the generator before it was split into modules
(``tests/recorded/synthesis_digests.json``): PNGs by mode, size and pixels (not by encoder
bytes), JSON by content with the run's own folders replaced by placeholders, other files by
their bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from fixtures import link_dataset
from irdet.data.synthesis import synthesize, synthesize_sequences

RECORDED = Path(__file__).resolve().parents[1] / "recorded" / "synthesis_digests.json"
IMAGE_IDS = ["Misc_23", "Misc_40", "S4_27"]  # full-sky grey, RGB without sky, partly-sky
SEQUENCE_BACKGROUNDS = ["Misc_56", "Misc_103", "S4_27"]  # partly-sky: borders and cloud edges to cross
HARD = dict(snr=(1.0, 20.0), snr_distribution="log-uniform", jitter=1.0, cross_sky_border=0.5, cross_cloud_edge=0.3,
            distractors=(1, 2), distractor_sky=0.5, test_fraction=0.25, val_fraction=0.25, targets=(2, 3))


def digests(out: Path, placeholders: dict[str, str]) -> dict[str, str]:
    """Relative path → sha256 of every file under ``out`` (module docstring); each key of
    ``placeholders`` (a folder path as written into the JSON files) is replaced by its value."""
    result = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix == ".png":
            with Image.open(p) as im:
                data = f"{im.mode} {im.size}".encode() + im.tobytes()
        elif p.suffix == ".json":
            text = p.read_text()
            for path, name in placeholders.items():
                text = text.replace(json.dumps(path)[1:-1], name)
            data = json.dumps(json.loads(text), sort_keys=True).encode()
        else:
            data = p.read_bytes()
        result[p.relative_to(out).as_posix()] = hashlib.sha256(data).hexdigest()
    return result


def run_all(real_root: Path, work: Path) -> dict[str, dict[str, str]]:
    """The three recorded runs under ``work``: run name → :func:`digests`."""
    src = link_dataset(real_root, work / "src", {"mini": IMAGE_IDS})
    runs = {}
    synthesize(src, "mini", work / "images", seed=3, progress=False)
    runs["images"] = digests(work / "images", {str(src): "<SRC>", str(work / "images"): "<OUT>"})
    synthesize_sequences(real_root, work / "sequences", 3, 3, 5, split=SEQUENCE_BACKGROUNDS, size=(64, 64),
                         val_fraction=0.34, progress=False)
    runs["sequences"] = digests(work / "sequences", {str(real_root): "<SRC>"})
    synthesize_sequences(real_root, work / "hard", 4, 4, 2, split=SEQUENCE_BACKGROUNDS, size=(96, 96), **HARD,
                         progress=False)
    runs["hard"] = digests(work / "hard", {str(real_root): "<SRC>"})
    return runs


def test_seeded_runs_write_the_recorded_files(densesirst, tmp_path):
    recorded = json.loads(RECORDED.read_text())
    runs = run_all(densesirst, tmp_path)
    for name, files in runs.items():
        expected = recorded[name]
        assert sorted(files) == sorted(expected), name  # same files written
        changed = [f for f in files if files[f] != expected[f]]
        assert not changed, f"{name}: {len(changed)} files differ from the recorded run, e.g. {changed[:5]}"
    # the runs exercise what they are meant to: pasted targets, distractors, crossings, a test split
    summary = json.loads((tmp_path / "images" / "synthesis_summary.json").read_text())
    assert summary["targets_added_total"] > 0 and summary["regions_refused"] >= 1
    hard = json.loads((tmp_path / "hard" / "summary.json").read_text())
    assert hard["distractors"] > 0 and hard["crossings"]["sky_border"] + hard["crossings"]["cloud_edge"] > 0
    assert set(hard["splits"]) == {"train", "val", "test"}
