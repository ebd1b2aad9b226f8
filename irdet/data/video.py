"""Frames of one sequence for inference: a frame folder, one image, or a video file (PyAV).

:class:`FrameSource` is what ``irdet detect`` and :meth:`irdet.api.Model.stream` read a
sequence checkpoint's input with. Frames are (H, W, 3) float32 RGB in [0, 255], the
:func:`irdet.data.io.read_image` conventions. Source: irdet extension.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from irdet.data.datasets.inputs import IMAGE_SUFFIXES
from irdet.errors import DataError

__all__ = ["FrameSource", "natural_key"]


def natural_key(name: str):
    """Sort key: digit runs compare as integers (``"9" < "10"``, ``"f2" < "f10"``)."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name) if tok]


class FrameSource:
    """Frames of a sequence: a folder of images, one image, or a video file (PyAV).

    * folder: files with an image suffix directly inside it, sorted numerically by name
      (digit runs compare as integers: ``2.png`` before ``10.png``); frame ids
      ``"<folder name>/<file stem>"``;
    * image file: a one-frame sequence;
    * any other file: decoded with PyAV (first video stream); frame ids
      ``"<file stem>/<frame index>"`` (0-based).

    Iterating yields ``(frame_id, image)`` with image (H, W, 3) float32 in [0, 255]
    (:func:`irdet.data.io.read_image` conventions). ``fps`` is the video's average rate (None
    for images); ``num_frames`` the count if known; ``files`` the frame files (None for a
    video).

    Raises:
        DataError (naming the path): not found, a folder without images, a file PyAV cannot
            open or that has no video stream, an unreadable frame.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fps: float | None = None
        self.files: list[Path] | None = None
        if self.path.is_dir():
            files = [f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise DataError(self.path, f"folder has no frames ({', '.join(IMAGE_SUFFIXES)})")
            self.files = sorted(files, key=lambda f: natural_key(f.name))
            self.name = self.path.name
        elif self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.files = [self.path]
            self.name = self.path.parent.name
        elif self.path.is_file():
            self.name = self.path.stem
            self._probe_video()
        else:
            raise DataError(self.path, "file or folder not found")

    def _probe_video(self) -> None:
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(self.path, "no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else None
                self._count = int(stream.frames) or None
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - any demuxer error means an unreadable file
            raise DataError(self.path, f"cannot read as a video ({exc.__class__.__name__}: {exc})") from None

    @property
    def num_frames(self) -> int | None:
        return len(self.files) if self.files is not None else self._count

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.files is not None:
            from irdet.data.io import read_image

            for f in self.files:
                yield f"{self.name}/{f.stem}", read_image(f)
            return
        import av

        try:
            with av.open(str(self.path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    yield f"{self.name}/{i}", frame.to_ndarray(format="rgb24").astype(np.float32)
        except Exception as exc:  # noqa: BLE001
            raise DataError(self.path, f"cannot decode the video ({exc.__class__.__name__}: {exc})") from None
