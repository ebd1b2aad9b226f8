"""Annotated videos: frames written to a video file with PyAV, atomically.

Source: irdet extension.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from irdet.data.io import default_file_mode

__all__ = ["VideoWriter", "available_video_codec", "VIDEO_CODECS"]

#: H.264 first (libx264 is in PyAV's wheels), then MPEG-4 part 2.
VIDEO_CODECS = ("libx264", "h264", "mpeg4")


def available_video_codec() -> str | None:
    """The first encoder of :data:`VIDEO_CODECS` the installed PyAV provides (None if none)."""
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return None
    for name in VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - UnknownCodecError and friends
            continue
    return None


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames to a video with PyAV, atomically (temp file + rename).

    Codec: ``codec`` or the first available of :data:`VIDEO_CODECS` (H.264 ``libx264``,
    ``yuv420p``, in an ``.mp4``). Odd frame sizes are padded by one black row/column (4:2:0
    needs even sizes). Use as a context manager; the file appears on a clean exit only, with
    the mode of a plain new file (:func:`irdet.data.io.default_file_mode`).

    Raises:
        RuntimeError: no encoder available (callers fall back to PNG frames).
    """

    def __init__(self, path, fps: float = 10.0, codec: str | None = None):
        import av

        self.path = Path(path)
        self.codec = codec or available_video_codec()
        if self.codec is None:
            raise RuntimeError("no video encoder in the installed PyAV")
        self.fps = fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        os.chmod(self._tmp, default_file_mode())  # mkstemp's 0600 -> 0666 & ~umask, as a plain file
        self._av = av
        self._container = av.open(self._tmp, mode="w")
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._stream is None:
            from fractions import Fraction

            self._stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
            self._stream.pix_fmt = "yuv420p"
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self, ok: bool = True) -> None:
        try:
            if ok and self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if ok and self._stream is not None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        return False
