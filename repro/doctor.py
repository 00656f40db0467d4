"""``repro doctor``: what this machine (or container) can run, and why not when it cannot.

Each check returns a :class:`Check` (ok, a one-line detail, and the fix when it failed). ``--need`` names the checks
a stage requires; the command exits non-zero when one of them fails, so the container's HEALTHCHECK and a Slurm
prologue can ask "can I train NVGesture on a GPU here?" before spending hours.

Checks: ``python``, ``torch``, ``gpu`` (CUDA and the device names), ``egl`` (the ModelNet40 renderer draws a test mesh
through headless EGL), ``av`` (PyAV can decode H.264 and MPEG-4, as the NVGesture stage needs), ``opencv`` (OpenCV
imports: the NVGesture stage resizes frames with it), ``hdf5`` (an HDF5 file can be written and read back), and one
per dataset (``cmnist``, ``modelnet40``, ``nvgesture``: the prepared file is present, readable and of the current
format version, and the last row of each array reads, its chunks' checksums checked; ``repro inspect PATH --verify``
reads every chunk).

This module imports nothing heavy at the top: each check imports what it checks, so a missing or broken torch,
PyAV or OpenCV is reported as a failed check with its fix, and the checks that do not need torch still run.
"""

from __future__ import annotations

import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .registry import DATASETS as _DATASET_SPECS

DATASETS = tuple(_DATASET_SPECS)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    return Check(
        "python",
        sys.version_info >= (3, 10),
        f"{platform.python_version()} ({sys.executable})",
        "use Python 3.10 or newer",
    )


def check_torch() -> Check:
    try:
        import torch
    except (ImportError, OSError) as exc:  # not installed, or a shared library missing
        return Check("torch", False, f"cannot import torch: {exc}", "make install")
    return Check("torch", True, f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")


def check_gpu() -> Check:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or "none"
        return Check(
            "gpu",
            False,
            f"no CUDA device visible (torch built for CUDA {built})",
            "run on a GPU machine; in Docker pass the GPU (compose requests it; `docker run --gpus all`)",
        )
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Check("gpu", True, f"CUDA {torch.version.cuda}: " + ", ".join(f"cuda:{i} {n}" for i, n in enumerate(names)))


def check_egl() -> Check:
    """Render a tetrahedron with the ModelNet40 stage's own renderer (moderngl, headless EGL) and check the views
    are not blank: the proof that ``repro prep modelnet40`` can run here."""
    import numpy as np

    from data_prep.common import PrepError
    from data_prep.render import SYSTEM_PACKAGES, ViewRenderer

    fix = f"apt-get install {' '.join(SYSTEM_PACKAGES)} (CPU, Mesa) or the NVIDIA driver with the graphics capability"
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
    try:
        renderer = ViewRenderer(size=64)
        views = renderer.render(vertices, triangles)
        name = renderer.renderer_name
        renderer.release()
    except PrepError as exc:
        return Check("egl", False, str(exc).split(";")[0], fix)
    if not (views > 0).any(axis=(1, 2)).all():
        return Check("egl", False, f"{name}: a test render came out blank", fix)
    return Check("egl", True, f"moderngl through EGL: {name}, 12 views of a test mesh rendered")


def check_av() -> Check:
    """PyAV present with the decoders NVGesture's videos need (H.264 depth, MPEG-4/H.264 colour)."""
    try:
        import av
    except (ImportError, OSError) as exc:
        return Check("av", False, f"cannot import PyAV: {exc}", "make install (PyAV is a pinned dependency)")
    missing = []
    for codec in ("h264", "mpeg4"):
        try:
            av.codec.Codec(codec, "r")
        except Exception:  # PyAV raises its own error types per version
            missing.append(codec)
    if missing:
        return Check(
            "av",
            False,
            f"PyAV {av.__version__} lacks decoders: {', '.join(missing)}",
            "install a PyAV wheel built with FFmpeg's h264 and mpeg4 decoders",
        )
    return Check("av", True, f"PyAV {av.__version__}, FFmpeg decoders h264 and mpeg4")


def check_opencv() -> Check:
    """OpenCV importable (the NVGesture stage resizes frames with ``cv2.resize``, as NVIDIA's readdata.py)."""
    try:
        import cv2
    except (ImportError, OSError) as exc:
        return Check("opencv", False, f"cannot import cv2: {exc}", "make install")
    return Check("opencv", True, f"OpenCV {cv2.__version__}")


def check_hdf5() -> Check:
    try:
        import h5py
        import numpy as np
    except ImportError as exc:
        return Check("hdf5", False, f"cannot import h5py: {exc}", "make install")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=np.arange(16, dtype=np.uint8), chunks=(4,), compression="gzip")
        with h5py.File(path, "r") as f:
            ok = bool((f["x"][:] == np.arange(16)).all())
    return Check(
        "hdf5", ok, f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, gzip round trip", "reinstall h5py"
    )


def check_dataset(name: str, data_dir: Path) -> Check:
    path = data_dir / f"{name}.h5"
    if not path.exists():
        return Check(name, False, f"{path} not found", _DATASET_SPECS[name].prep_hint)
    from data_prep.common import PrepError
    from data_prep.inspect import describe, quick_check

    try:  # cheap: attributes, counts, format version, the last row of each array (its chunks' checksums)
        info = describe(path)
        version = quick_check(path)
    except PrepError as exc:  # one line: the file, what is wrong, the command that rebuilds it
        return Check(name, False, str(exc), f"delete it and run {_DATASET_SPECS[name].prep_hint}")
    except OSError as exc:
        return Check(name, False, f"{path}: unreadable ({exc})", f"delete it and run {_DATASET_SPECS[name].prep_hint}")
    counts = ", ".join(f"{s} {v['count']}" for s, v in info["splits"].items())
    return Check(name, True, f"{path}: {counts}, {version} (every chunk: repro inspect {path} --verify)")


#: The checks in the order they are reported, and whether each needs torch (run only when ``torch`` passed).
CHECKS: tuple[tuple[str, Callable[[], Check], bool], ...] = (
    ("python", check_python, False),
    ("torch", check_torch, False),
    ("gpu", check_gpu, True),
    ("egl", check_egl, False),
    ("av", check_av, False),
    ("opencv", check_opencv, False),
    ("hdf5", check_hdf5, False),
)
#: Every check's name, the datasets last.
NAMES = tuple(name for name, _, _ in CHECKS) + DATASETS


def run_checks(data_dir: Path) -> list[Check]:
    """Every check of :data:`NAMES`, in that order. Those that need torch fail with the torch fix when torch does not
    import; the others run regardless."""
    results: list[Check] = []
    torch_ok = True
    for name, check, needs_torch in CHECKS:
        if needs_torch and not torch_ok:
            results.append(Check(name, False, "not checked: torch does not import", "make install"))
            continue
        results.append(check())
        if name == "torch":
            torch_ok = results[-1].ok
    return results + [check_dataset(d, data_dir) for d in DATASETS]


def to_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
