"""Pictures of detections: overlays (:mod:`~irdet.visualize.overlay`), annotated videos
(:mod:`~irdet.visualize.video`) and augmented training samples (:mod:`~irdet.visualize.augment`)."""

from irdet.visualize.augment import _PASTED, augment_grid, marked_train_set
from irdet.visualize.overlay import overlay
from irdet.visualize.video import VIDEO_CODECS, VideoWriter, available_video_codec

__all__ = ["overlay", "augment_grid", "marked_train_set", "VideoWriter", "available_video_codec", "VIDEO_CODECS"]
