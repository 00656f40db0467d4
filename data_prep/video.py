"""Decode a frame window of a video file with PyAV (FFmpeg), resize it with OpenCV: square uint8 frames.

Used by the NVGesture stage (Wu et al., ICML 2022, A.4: frames resized to 256x256), which prepares the dataset "as
Joze et al. (2020)", i.e. as the reader NVIDIA ships with it (``readdata.py``, ``load_data_from_file``):
``cv2.VideoCapture`` on the ``.avi``, seek to the window's start frame, ``cv2.resize(frame, (width, height))``
(OpenCV's default interpolation, ``INTER_LINEAR``), depth = channel 0 of the frame. Here:

* decoding stays PyAV's: sequentially from the first frame (no seeking, so a list's frame indices are honoured
  exactly on any file) and with one-line errors naming the file. The frames are the same as OpenCV's: both
  convert FFmpeg's yuv420p to 24-bit RGB with libswscale, and on the fixture's videos (real ``sk_depth.avi``,
  synthetic H.264 colour) PyAV's native-size RGB equals OpenCV's BGR decode, channels swapped, bit for bit, and
  OpenCV's ``CAP_PROP_POS_FRAMES`` seek lands on the listed frame (tests/test_nvgesture_opencv.py);
* the resize is OpenCV's: ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on the native-size frame, as the
  reader. (Before format version 2 the stage let libswscale's bilinear filter decode and resize in one pass; it
  places pixel centres differently: up to 17 grey levels apart from the reader on the fixture, docs/nvgesture.md.)

Colour is kept in RGB order. The reader returns OpenCV's BGR and stores it as is; what Joze et al. then fed their
Kinetics-pretrained I3D is not public (Wu et al.'s code, github.com/nyukat/greedy_multimodal_learning, has no
NVGesture code: ModelNet40 only), and the I3D weights expect RGB, so RGB it is. Depth is stored as three equal
channels (neutral chroma); the reader's channel 0 of BGR is blue, so depth is the blue channel of the RGB decode,
equal to the red and green ones on the fixture's depth videos.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from data_prep.common import PrepError

#: The resize, as recorded in the NVGesture recipe (NVIDIA's readdata.py: cv2.resize with its default).
INTERPOLATION = cv2.INTER_LINEAR
RESIZE = "OpenCV cv2.resize INTER_LINEAR of the native-size frame (as NVIDIA's readdata.py)"
#: The RGB channel holding depth: the reader's channel 0 of OpenCV's BGR, i.e. blue.
DEPTH_CHANNEL = 2


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W) or (H, W, C) uint8 as (size, size[, C]): ``cv2.resize`` with ``INTER_LINEAR``."""
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=INTERPOLATION)


def read_window(path: str | Path, start: int, end: int, size: int, channels: int) -> tuple[np.ndarray, int]:
    """Frames ``start <= i < end`` of the first video stream of ``path`` as (L, size, size, channels) uint8
    (``channels`` 3: RGB; 1: the blue channel, see the module's docstring), and the number of frames the video
    holds up to ``end`` (less than ``end`` when the video is shorter than the window; then L < end - start).

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
                    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()  # native size
                    if channels == 3:
                        frames.append(resize(rgb, size))
                    else:  # one channel resized alone: the same numbers as channel 0 of the BGR frame resized
                        frames.append(resize(np.ascontiguousarray(rgb[..., DEPTH_CHANNEL]), size)[..., None])
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
