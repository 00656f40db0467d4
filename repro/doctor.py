"""``repro doctor``: what this machine (or container) can run, and why not when it cannot.

Each check returns a :class:`Check` (ok, a one-line detail, and the fix when it failed). ``--need`` names the checks
a stage requires; the command exits non-zero when one of them fails, so the container's HEALTHCHECK and a Slurm
prologue can ask "can I train NVGesture on a GPU here?" before spending hours.

Checks: ``python``, ``torch``, ``gpu`` (CUDA and the device names), ``egl`` (a headless EGL display can be initialised,
as the ModelNet40 renderer needs), ``av`` (PyAV can decode H.264 and MPEG-4, as the NVGesture stage needs), ``hdf5``
(an HDF5 file can be written and read back), and one per dataset (``cmnist``, ``modelnet40``, ``nvgesture``: the
prepared file is present and readable).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

DATASETS = ("cmnist", "modelnet40", "nvgesture")
PREP_HINT = {
    "cmnist": "make data/cmnist.h5",
    "modelnet40": "make data MODELNET40_RAW=/path/to/ModelNet40",
    "nvgesture": "make data NVGESTURE_RAW=/path/to/nvGesture",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    return Check("python", sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})",
                 "use Python 3.10 or newer")


def check_torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", False, f"cannot import torch: {exc}", "make install")
    return Check("torch", True, f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")


def check_gpu() -> Check:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or "none"
        return Check("gpu", False, f"no CUDA device visible (torch built for CUDA {built})",
                     "run on a GPU machine; in Docker pass the GPU (compose requests it; `docker run --gpus all`)")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Check("gpu", True, f"CUDA {torch.version.cuda}: " + ", ".join(f"cuda:{i} {n}" for i, n in enumerate(names)))


def check_egl() -> Check:
    """Initialise an EGL display through libEGL, as a headless OpenGL renderer does first. Without a window system
    the default display fails, so the surfaceless platform (Mesa and NVIDIA drivers both offer it) is the default."""
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    fix = "install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or the NVIDIA driver's"
    name = ctypes.util.find_library("EGL")
    if name is None:
        return Check("egl", False, "libEGL not found", fix)
    try:
        egl = ctypes.CDLL(name)
        egl.eglGetDisplay.restype = ctypes.c_void_p
        egl.eglGetDisplay.argtypes = [ctypes.c_void_p]
        egl.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        display = egl.eglGetDisplay(None)  # EGL_DEFAULT_DISPLAY
        major, minor = ctypes.c_int(), ctypes.c_int()
        if not display or not egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
            platform_name = os.environ["EGL_PLATFORM"]
            return Check("egl", False, f"{name}: eglInitialize failed (EGL_PLATFORM={platform_name})", fix)
        egl.eglTerminate.argtypes = [ctypes.c_void_p]
        egl.eglTerminate(display)
    except (OSError, AttributeError) as exc:
        return Check("egl", False, f"{name}: {exc}", fix)
    return Check("egl", True, f"{name}: EGL {major.value}.{minor.value} (EGL_PLATFORM={os.environ['EGL_PLATFORM']})")


def check_av() -> Check:
    """PyAV present with the decoders NVGesture's videos need (H.264 depth, MPEG-4/H.264 colour)."""
    try:
        import av
    except ImportError:
        return Check("av", False, "PyAV is not installed", "make install (PyAV is a pinned dependency)")
    missing = []
    for codec in ("h264", "mpeg4"):
        try:
            av.codec.Codec(codec, "r")
        except Exception:  # PyAV raises its own error types per version
            missing.append(codec)
    if missing:
        return Check("av", False, f"PyAV {av.__version__} lacks decoders: {', '.join(missing)}",
                     "install a PyAV wheel built with FFmpeg's h264 and mpeg4 decoders")
    return Check("av", True, f"PyAV {av.__version__}, FFmpeg decoders h264 and mpeg4")


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
    return Check("hdf5", ok, f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, gzip round trip",
                 "reinstall h5py")


def check_dataset(name: str, data_dir: Path) -> Check:
    path = data_dir / f"{name}.h5"
    if not path.exists():
        return Check(name, False, f"{path} not found", PREP_HINT[name])
    from data_prep.common import PrepError
    from data_prep.inspect import describe

    try:
        info = describe(path)
    except (PrepError, OSError) as exc:
        return Check(name, False, f"{path}: unreadable ({exc})", f"delete it and run {PREP_HINT[name]}")
    counts = ", ".join(f"{s} {v['count']}" for s, v in info["splits"].items())
    return Check(name, True, f"{path}: {counts}")


def run_checks(data_dir: Path) -> list[Check]:
    checks: list[Callable[[], Check]] = [check_python, check_torch, check_gpu, check_egl, check_av, check_hdf5]
    results = [c() for c in checks[:2]]
    if not results[1].ok:  # the rest import torch
        return results
    results += [c() for c in checks[2:]]
    return results + [check_dataset(d, data_dir) for d in DATASETS]


def to_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
