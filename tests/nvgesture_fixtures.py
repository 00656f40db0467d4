"""An NVGesture folder in the real format, built from the committed fixture (``tests/fixtures/nvgesture``).

The fixture holds the two real split lists and six real ``sk_depth.avi`` (H.264, 320x240). :func:`make_raw` copies
them into a temporary folder and adds what the fixture lacks:

* ``sk_color.avi`` beside each depth video: a synthetic H.264 video whose frame i shows i in binary as eight
  vertical stripes (green 255 for a 1 bit, 0 for a 0), so a stored RGB frame tells which source frame it is
  (:func:`frame_index`);
* more samples for a stratified split: real list lines of other repetitions / test subjects of classes 1-3, whose
  folders get a copy of one of the six real depth videos;
* the real last line of the test list (label 25, no final newline) and one test line with a 40-frame window
  (``SHORT_LINE``), which the stage must zero-pad to 64 frames.

Lists are written byte for byte from the real lines (trailing spaces kept; no newline after the test list's last
line), only restricted to the samples present.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np

#: The real samples, committed in ``tests/fixtures/nvgesture`` (a copy of the project's
#: ``shared/fixtures/nvgesture``, so a clean clone and the image test them too), or $NVGESTURE_FIXTURE.
FIXTURE = Path(os.environ.get("NVGESTURE_FIXTURE") or Path(__file__).resolve().parent / "fixtures" / "nvgesture")
TRAIN_LIST = "nvgesture_train_correct_cvpr2016_v2.lst"
TEST_LIST = "nvgesture_test_correct_cvpr2016_v2.lst"
REAL_DEPTH = (  # the six real depth videos of the fixture
    "Video_data/class_01/subject3_r0",
    "Video_data/class_01/subject3_r1",
    "Video_data/class_02/subject3_r0",
    "Video_data/class_02/subject3_r1",
    "Video_data/class_03/subject11_r0",
    "Video_data/class_03/subject11_r1",
)
EXTRA_TRAIN = (  # real train-list lines whose folders get copies of real depth videos
    "Video_data/class_01/subject3_r2",
    "Video_data/class_01/subject3_r3",
    "Video_data/class_02/subject3_r2",
    "Video_data/class_02/subject3_r3",
    "Video_data/class_03/subject11_r2",
    "Video_data/class_03/subject3_r0",
)
COLOR_FRAMES = 250  # every window of the lines used ends by frame 241
SHORTEST = 238  # frames of the shortest real depth video here (class_03/subject11_r1)


def _path_of(line: str) -> str:
    return line.split()[0].removeprefix("path:./") if line.strip() else ""


def real_lines(name: str) -> list[str]:
    """The real list's lines, trailing spaces kept, without line ends."""
    return (FIXTURE / name).read_bytes().decode("ascii").split("\n")


BITS = 8


def write_color_video(path: Path, frames: int = COLOR_FRAMES) -> None:
    """320x240 H.264 at 30 fps; frame i: red 64, blue 128, green stripes of 40 px = the bits of i, MSB left."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            image = np.empty((240, 320, 3), np.uint8)
            image[...] = (64, 0, 128)
            for bit in range(BITS):
                if (i >> (BITS - 1 - bit)) & 1:
                    image[:, bit * 40 : (bit + 1) * 40, 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def frame_index(frame: np.ndarray) -> int:
    """The source frame number of a stored (H, W, 3) RGB frame of :func:`write_color_video` (full width)."""
    width = frame.shape[1]
    centres = [int((bit + 0.5) * width / BITS) for bit in range(BITS)]
    bits = [int(frame[:, c, 1].mean() > 128) for c in centres]
    return int("".join(map(str, bits)), 2)


def make_raw(root: Path, extra: int = 0) -> Path:
    """The NVGesture folder described above under ``root``; returns it. Train: 12 lines (4 per class 1-3) and
    the first ``extra`` other lines of the real list (for throughput measurements); test: 4 lines (classes 1, 2,
    3 and the list's last line, class 25), the class-2 one cut to 40 frames."""
    raw = root / "nvgesture"
    color = root / "color.avi"
    write_color_video(color)
    train = [ln for ln in real_lines(TRAIN_LIST) if _path_of(ln) in REAL_DEPTH + EXTRA_TRAIN]
    fits = [ln for ln in real_lines(TRAIN_LIST) if ln.strip() and ln not in train and _color_end(ln) <= SHORTEST]
    train += fits[:extra]
    test_all = real_lines(TEST_LIST)
    test = []
    for cls in ("class_01", "class_02", "class_03"):
        test.append(next(ln for ln in test_all if f"/{cls}/" in ln))
    test.append(test_all[-1])
    test[1] = test[1].replace(test[1].split()[2], _shortened(test[1].split()[2], 40))
    assert len(train) == 12 + extra and len(test) == 4
    for i, line in enumerate(train + test):
        folder = raw / _path_of(line)
        folder.mkdir(parents=True, exist_ok=True)
        source = _path_of(line) if _path_of(line) in REAL_DEPTH else REAL_DEPTH[i % len(REAL_DEPTH)]
        shutil.copyfile(FIXTURE / source / "sk_depth.avi", folder / "sk_depth.avi")
        shutil.copyfile(color, folder / "sk_color.avi")
    (raw / TRAIN_LIST).write_bytes(("\n".join(train) + "\n").encode("ascii"))
    (raw / TEST_LIST).write_bytes("\n".join(test).encode("ascii"))  # no final newline, as the real one
    return raw


def _color_end(line: str) -> int:
    return int(next(t for t in line.split() if t.startswith("color:")).split(":")[3])


def _shortened(color_token: str, length: int) -> str:
    name, stream, start, _ = color_token.split(":")
    return f"{name}:{stream}:{start}:{int(start) + length}"
