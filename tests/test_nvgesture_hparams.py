"""NVGesture's paper settings (§5.4, Table 1) and its two Table-1 settings; new config fields keep the spec hashes
of runs recorded before they existed."""

import pytest

from repro.config import resolve


def test_paper_settings_and_table1_setting():
    cfg = resolve("nvgesture")
    assert (cfg.lr, cfg.momentum, cfg.batch_size, cfg.alpha, cfg.window) == (0.01, 0.9, 4, 0.1, 5)
    assert cfg.modality_names == ("rgb", "depth") and cfg.rubi_bias_modality == 1  # depth, the relied-on one
    assert cfg.setting == "nvgesture-scratch" and cfg.data == "data/nvgesture.h5"
    assert resolve("nvgesture", pretrained="w/rgb_imagenet.pt").setting == "nvgesture-pretrained"
    assert resolve("nvgesture", modalities="depth,depth").modality_names == ("depth", "depth")


def test_new_fields_leave_earlier_spec_hashes_alone():
    assert resolve("cmnist").spec_hash() == "18319f8589c6"  # the hash before `pretrained` and `workers` existed
    assert resolve("cmnist", workers=0).spec_hash() == "18319f8589c6"  # runtime only
    assert resolve("nvgesture", pretrained="a.pt").spec_hash() != resolve("nvgesture").spec_hash()


def test_nonsense_is_refused():
    with pytest.raises(ValueError, match="one or two"):
        resolve("nvgesture", modalities="rgb,depth,rgb")
    with pytest.raises(ValueError, match="needs --pretrained"):  # a scratch run labelled pretrained
        resolve("nvgesture", setting="nvgesture-pretrained")
    with pytest.raises(ValueError, match="drop --pretrained"):
        resolve("nvgesture", setting="nvgesture-scratch", pretrained="w.pt")
