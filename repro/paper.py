"""The numbers Wu et al. (ICML 2022) report, as data, so that reports can put ours beside theirs.

Source: the paper's Table 1 (§5.4, "Improved generalization performance") and the figures quoted in the
text of §1, §5.1, §5.2 and §5.4.
"""

from __future__ import annotations

from typing import NamedTuple

# --- Table 1 (§5.4): test accuracy (%), mean ± std over 3 runs ---

#: Table-1 columns in the paper's order: key -> display name.
SETTINGS: dict[str, str] = {
    "cmnist": "Colored-and-gray MNIST",
    "modelnet40": "ModelNet40",
    "nvgesture-scratch": "NVGesture-scratch",
    "nvgesture-pretrained": "NVGesture-pretrained",
}

# Table-1 rows: vanilla, RUBi, random, guided, in this order: the entries of repro.registry.ALGORITHMS marked
# ``paper`` (which hold their display names); TABLE1 below has one value per row and setting.

#: Number of runs behind each Table-1 entry ("we train each model three times", §5.4).
PAPER_RUNS = 3


class PaperValue(NamedTuple):
    """One Table-1 entry: test accuracy in percent, mean and std over :data:`PAPER_RUNS` runs."""

    mean: float
    std: float


#: Table 1 of the paper, keyed by (setting, algorithm).
TABLE1: dict[tuple[str, str], PaperValue] = {
    ("cmnist", "vanilla"): PaperValue(45.26, 0.46),
    ("cmnist", "rubi"): PaperValue(44.79, 0.62),
    ("cmnist", "random"): PaperValue(74.07, 2.75),
    ("cmnist", "guided"): PaperValue(91.01, 1.20),
    ("modelnet40", "vanilla"): PaperValue(90.09, 0.58),
    ("modelnet40", "rubi"): PaperValue(90.45, 0.58),
    ("modelnet40", "random"): PaperValue(91.36, 0.10),
    ("modelnet40", "guided"): PaperValue(91.37, 0.28),
    ("nvgesture-scratch", "vanilla"): PaperValue(79.81, 1.14),
    ("nvgesture-scratch", "rubi"): PaperValue(79.95, 0.12),
    ("nvgesture-scratch", "random"): PaperValue(79.88, 0.90),
    ("nvgesture-scratch", "guided"): PaperValue(80.22, 0.73),
    ("nvgesture-pretrained", "vanilla"): PaperValue(83.20, 0.21),
    ("nvgesture-pretrained", "rubi"): PaperValue(81.60, 1.28),
    ("nvgesture-pretrained", "random"): PaperValue(82.64, 0.84),
    ("nvgesture-pretrained", "guided"): PaperValue(83.82, 1.45),
}

# --- Other reported figures ---

#: §5.1 (Colored-and-gray MNIST): uni-modal DNNs reach these *validation* accuracies (%).
#: m0 = monochromatic image, m1 = gray-scale image.
CMNIST_UNIMODAL_VAL_ACC: dict[str, float] = {"mono": 43.0, "gray": 98.0}

#: §5.1 (ModelNet40): uni-modal DNNs reach these accuracies (%). m0 = front view, m1 = rear view.
MODELNET40_UNIMODAL_ACC: dict[str, float] = {"front": 91.6, "rear": 93.1}

#: §5.2 ("Results"): |E[d_util]| of conventionally (vanilla) trained models over the §5.2 learning-rate sweep,
#: with two *distinct* modalities, per dataset (both NVGesture settings share the one NVGesture figure).
ABS_MEAN_D_UTIL_DISTINCT: dict[str, float] = {"cmnist": 0.3, "modelnet40": 0.1, "nvgesture": 0.4}

#: §5.2: with two *identical* input modalities E[d_util] is approximately 0 on every dataset.
ABS_MEAN_D_UTIL_IDENTICAL: float = 0.0

#: §5.4 ("Calibrated modality utilization", Figure 4): E[d_util] over the §5.2 learning-rate sweep,
#: keyed (dataset, algorithm).
MEAN_D_UTIL_BALANCED: dict[tuple[str, str], float] = {
    ("nvgesture", "guided"): 0.3,
    ("nvgesture", "vanilla"): 0.4,
    ("modelnet40", "guided"): -0.0,
    ("modelnet40", "vanilla"): -0.1,
}

#: §1 (Introduction): conditional utilization rates of one DNN trained on NVGesture.
NVGESTURE_U_RGB_GIVEN_DEPTH: float = 0.01
NVGESTURE_U_DEPTH_GIVEN_RGB: float = 0.63
