"""The defaults ``repro prep --help`` shows, in a module without heavy imports, so the command line lists them
without importing the stages (h5py, PyAV, OpenCV, moderngl). Each equals the stage's own constant
(``tests/test_imports.py`` holds them equal)."""

from __future__ import annotations

from pathlib import Path

# data_prep.cmnist / data_prep.mnist_source
CMNIST_OUT = Path("data/cmnist.h5")
CMNIST_SEED = 0
CMNIST_VARIANCE = 0.035
MNIST_CACHE_DIR = Path("data/raw/mnist")
MNIST_SOURCES = ("auto", "dir", "torchvision", "pypi")

# data_prep.modelnet40
MODELNET40_OUT = Path("data/modelnet40.h5")

# data_prep.nvgesture
NVGESTURE_OUT = Path("data/nvgesture.h5")
NVGESTURE_SEED = 0
NVGESTURE_FRAME_SIZE = 256
