"""Decode a frame window of a video file with PyAV (FFmpeg): frames resized to a square, as uint8 arrays.

Used by the NVGesture stage (Wu et al., ICML 2022, A.4: frames resized to 256x256). NVGesture's ``sk_color.avi``
and ``sk_depth.avi`` are 320x240 H.264; depth is stored as three equal channels, so a depth frame is channel 0
of the RGB decode. Frames are decoded sequentially from the start (no seeking: H.264 seeks land on key frames,
so counting from the first frame is the only exact way to honour a list's frame indices).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from data_prep.common import PrepError

#: libswscale interpolation used for resizing (the paper does not say; bilinear as OpenCV's default).
INTERPOLATION = "BILINEAR"


def read_window(path: str | Path, start: int, end: int, size: int, channels: int) -> tuple[np.ndarray, int]:
    """Frames ``start <= i < end`` of the first video stream of ``path`` as (L, size, size, channels) uint8
    (``channels`` 3: RGB; 1: channel 0 of the RGB decode), and the number of frames the video holds up to
    ``end`` (less than ``end`` when the video is shorter than the window; then L < end - start).

    Raises :class:`PrepError` naming the file when it is missing, cannot be decoded, holds no frame of the
    window, or decodes to fewer frames than its header announces (a truncated download)."""
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: missing video; put the complete NVGesture Video_data/ under --raw")
    frames: list[np.ndarray] = []
    seen = announced = 0
    reformatter = VideoReformatter()  # one per video: a fresh scaler per frame costs 10x the decoding
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise PrepError(f"{path}: no video stream; the file is damaged, download it again")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            announced = stream.frames  # from the AVI header; 0 when unknown
            for frame in container.decode(stream):
                if seen >= end:
                    break
                if seen >= start:
                    rgb = reformatter.reformat(
                        frame, width=size, height=size, format="rgb24", interpolation=INTERPOLATION
                    )
                    array = rgb.to_ndarray()
                    frames.append(array if channels == 3 else array[..., :channels])
                seen += 1
    except av.FFmpegError as e:
        raise PrepError(
            f"{path}: cannot decode ({type(e).__name__}: {e}); the file is damaged, download it again"
        ) from e
    if 0 < seen < min(end, announced):
        raise PrepError(
            f"{path}: decodes to {seen} frames, its header announces {announced}; the file is "
            f"truncated or damaged, download it again"
        )
    if not frames:
        raise PrepError(
            f"{path}: holds {seen} frames, none in the listed window {start}:{end}; check the list "
            f"line or download the video again"
        )
    return np.stack(frames), seen
