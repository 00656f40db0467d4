"""Our NVGesture frames against the dataset's own reader, on the real fixture videos (see nvgesture_fixtures).

The paper prepares NVGesture "as Joze et al. (2020)": with NVIDIA's ``readdata.py`` (``load_data_from_file``),
transcribed in :func:`reader_window`: ``cv2.VideoCapture``, seek to the window's start (``CAP_PROP_POS_FRAMES``),
``cv2.resize(frame, (width, height))`` with OpenCV's default ``INTER_LINEAR``, depth = channel 0. Our stage decodes
with PyAV and resizes with ``cv2.resize`` (data_prep.video); these tests check that its frames are the reader's,
colour (RGB here, the reader's BGR reversed) and depth, on every real depth video of the fixture and on the
synthetic colour video, so our decode is cross-checked against OpenCV's too.

Tolerance: none, the frames must be equal byte for byte. Measured: 0 on every window (before OpenCV did the resize,
libswscale's bilinear resize was up to 14-17 grey levels off on depth, 37 on the synthetic colour; docs/nvgesture.md).
Why exact holds although PyAV (FFmpeg 8.1, libswscale 9) and OpenCV (its own FFmpeg, libavcodec 63, libswscale 10)
ship different FFmpeg builds: H.264 decoding is normative (a conforming decoder's YUV output is bit-exact), both
convert the yuv420p frame to 24-bit RGB at native size with libswscale's default path (equal on these videos), the
OpenCV seek lands on the listed frame, and the resize is then the same ``cv2.resize`` on the same bytes. A future
wheel that changed libswscale's YUV->RGB rounding would show up here as a difference of 1; that would be a decoder
difference to note, not a resize one.
"""

import cv2
import numpy as np
import pytest
from PIL import Image

from data_prep.mvcnn_images import read_views
from data_prep.nvgesture import load_sample, read_list
from data_prep.video import read_window

from nvgesture_fixtures import FIXTURE, REAL_DEPTH, TEST_LIST, TRAIN_LIST, make_raw

pytestmark = pytest.mark.skipif(
    not FIXTURE.is_dir(),
    reason=f"no NVGesture fixture at {FIXTURE}; restore tests/fixtures/nvgesture from git or set NVGESTURE_FIXTURE",
)
TOLERANCE = 0  # grey levels; see the module's docstring


def reader_window(path, start: int, end: int, size: int, channels: int) -> np.ndarray:
    """NVIDIA's ``load_data_from_file`` for one video: (L, size, size, channels) uint8, colour as RGB."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(start, end):
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.resize(frame, (size, size))  # the reader's call: the default interpolation, INTER_LINEAR
        frames.append(frame[..., ::-1] if channels == 3 else frame[..., :1])  # BGR -> RGB; depth: channel 0
    cap.release()
    return np.stack(frames)


def _assert_same(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert ours.shape == reference.shape, (what, ours.shape, reference.shape)
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert diff.max() <= TOLERANCE, f"{what}: max {diff.max()}, mean {diff.mean():.4f}"


def _real_depth_samples():
    samples = read_list(FIXTURE / TRAIN_LIST) + read_list(FIXTURE / TEST_LIST)
    return [s for s in samples if s.path in REAL_DEPTH]


@pytest.mark.parametrize("sample", _real_depth_samples(), ids=lambda s: s.path.removeprefix("Video_data/"))
def test_depth_of_every_real_list_window_is_the_readers(sample):
    """Each real depth video of the fixture, its list line's window, at the paper's 256x256."""
    path = FIXTURE / sample.path / "sk_depth.avi"
    ours, _ = read_window(path, sample.start, sample.end, 256, 1)
    _assert_same(ours, reader_window(path, sample.start, sample.end, 256, 1), f"{path} {sample.start}:{sample.end}")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("nvg-opencv"))


@pytest.mark.parametrize("window", [(10, 30), (100, 140)])
@pytest.mark.parametrize("size", [256, 16])
def test_the_issue_windows_colour_and_depth(raw, window, size):
    """class_02/subject3_r1's depth (real) and colour (synthetic H.264) at 256x256 and at the tests' 16x16."""
    folder = raw / "Video_data/class_02/subject3_r1"
    for name, channels in (("sk_color.avi", 3), ("sk_depth.avi", 1)):
        ours, _ = read_window(folder / name, *window, size, channels)
        _assert_same(ours, reader_window(folder / name, *window, size, channels), f"{name} {window} @{size}")


def test_stored_clips_of_list_lines_are_the_readers(raw):
    """What the stage stores for a list line (load_sample: the window, padding included), both modalities: a full
    80-frame line and the 40-frame test line the fixture pads to 64."""
    samples = read_list(raw / TEST_LIST)
    short = next(s for s in samples if s.end - s.start == 40)
    for sample in (samples[0], short):
        clips, num_frames, n = load_sample(raw, sample, 80, 256)
        before = (num_frames - n) // 2
        for modality, name, channels in (("rgb", "sk_color.avi", 3), ("depth", "sk_depth.avi", 1)):
            reference = reader_window(raw / sample.path / name, sample.start, sample.end, 256, channels)
            _assert_same(clips[modality][before : before + n], reference, f"{sample.path} {modality}")
            assert not clips[modality][:before].any() and not clips[modality][before + n :].any()


def test_mvcnn_images_are_resized_by_opencv(tmp_path):
    """ModelNet40 --from-images: a view of another size is PIL's 8-bit gray, resized by cv2.resize INTER_LINEAR."""
    rng = np.random.default_rng(0)
    paths, grays = [], []
    for k in range(12):
        image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        paths.append(tmp_path / f"chair_0001.obj.shaded_v{k + 1:03d}.png")
        Image.fromarray(image).save(paths[-1])
        grays.append(np.asarray(Image.fromarray(image).convert("L")))
    views = read_views(paths, 32)
    expected = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_LINEAR) for g in grays])
    assert np.array_equal(views, expected)
    assert np.array_equal(read_views(paths, 48), np.stack(grays))  # the published size: stored as is
