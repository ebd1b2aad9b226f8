"""irdet.data.io writers: result files get the mode of a plain new file (0666 & ~umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from irdet.data.io import atomic_save_image, atomic_write_bytes, atomic_write_json, default_file_mode


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writers_follow_the_umask(tmp_path, umask):
    assert default_file_mode() == 0o666 & ~umask
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "metrics.json", {"mAP07": 0.5})
    atomic_save_image(tmp_path / "overlays" / "a.png", np.zeros((4, 5, 3), np.uint8))
    for name in ("a.bin", "metrics.json", "overlays/a.png"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    if umask == 0o022:
        assert _mode(tmp_path / "metrics.json") == 0o644
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_annotated_video_follows_the_umask(tmp_path):
    from irdet.visualize.video import VideoWriter, available_video_codec

    if available_video_codec() is None:
        pytest.skip("no video encoder in the installed PyAV")
    old = os.umask(0o022)
    try:
        with VideoWriter(tmp_path / "clip.mp4", fps=5) as writer:
            for k in range(3):
                writer.write(np.full((16, 16, 3), 40 * k, np.uint8))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "clip.mp4") == 0o644
