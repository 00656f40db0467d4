"""The pipeline's recipes: the Dockerfile installs through the README's target, `make -n table1` plans exactly the
missing runs of the settings present, and `reproduce.sh --dry-run` prints that plan without running anything."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def test_dockerfile_installs_through_the_readme_install_target():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make install\b", readme, re.M), "the README must give `make install` as the set-up command"
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = [line for line in re.split(r"\n(?=[A-Z]+ )", dockerfile) if line.startswith("RUN ")]
    installs = [r for r in runs if "make install" in r]
    assert len(installs) == 1, "the image must install the project exactly once, with `make install`"
    assert not any(re.search(r"\bpip3? install\b", r) for r in runs), "no second recipe: pip only through make"
    assert re.search(r"^FROM nvidia/cuda:\d+\.\d+\.\d+-\S+$", dockerfile, re.M), "a pinned CUDA base image"
    assert re.search(r'^HEALTHCHECK .*"repro", "doctor"', dockerfile, re.M)
    assert re.search(r"^USER \d+", dockerfile, re.M), "a non-root user"


def _layout(tmp_path: Path, *, data=("cmnist.h5",), done=(), weights=False) -> dict[str, str]:
    """A data directory, a stand-in installed venv and a results directory in which the runs ``done`` finished
    (their markers newer than the data, as after training)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in data:
        (data_dir / name).touch()
    old = time.time() - 100
    for p in data_dir.iterdir():
        os.utime(p, (old, old))
    results = tmp_path / "results"
    for run in done:
        marker = results / "table1" / "runs" / run / "done"
        marker.parent.mkdir(parents=True)
        marker.touch()
    variables = {
        "VENV": str(venv),
        "DATA": str(data_dir),
        "RESULTS": str(results),
        "SEEDS": "0 1",
        "ALGORITHMS": "vanilla guided",
        "MODELNET40_RAW": "",
        "NVGESTURE_RAW": "",
    }
    if weights:
        (tmp_path / "rgb_imagenet.pt").touch()
        os.utime(tmp_path / "rgb_imagenet.pt", (old, old))
    variables["NVGESTURE_WEIGHTS"] = str(tmp_path / "rgb_imagenet.pt")
    return variables


def _plan(args: list[str], variables: dict[str, str]) -> list[str]:
    # Under `make test` the inherited MAKELEVEL/MAKEFLAGS would make this a sub-make printing "Entering directory".
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    out = subprocess.run(
        args + [f"{k}={v}" for k, v in variables.items()], cwd=ROOT, check=True, capture_output=True, text=True, env=env
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _runs(plan: list[str]) -> list[tuple[str, str, str]]:
    """(setting, algorithm, seed) of each `repro train` in the plan."""
    found = []
    for line in plan:
        if " train " in line:
            opts = dict(re.findall(r"--([a-z-]+) (\S+)", line))
            found.append((opts["setting"], opts["algorithm"], opts["seed"]))
    return found


def test_make_table1_plans_only_the_missing_runs(tmp_path):
    variables = _layout(tmp_path, done=("cmnist/vanilla/seed0", "cmnist/guided/seed1"))
    plan = _plan(["make", "-n", "table1"], variables)
    assert _runs(plan) == [("cmnist", "vanilla", "1"), ("cmnist", "guided", "0")]
    assert not any(" prep " in line for line in plan), "the prepared file is present"
    assert plan[-1].endswith(f"table1 --results {variables['RESULTS']}/table1/runs --out {variables['RESULTS']}/table1")
    train = next(line for line in plan if " train " in line)
    assert f"--data {variables['DATA']}/cmnist.h5" in train
    assert f"--out {variables['RESULTS']}/table1/runs/cmnist/vanilla/seed1" in train


def test_make_table1_protocol_reference_trains_into_its_own_folders(tmp_path):
    variables = _layout(
        tmp_path, done=("cmnist/vanilla/seed0", "cmnist/vanilla/seed1", "cmnist/guided/seed0", "cmnist/guided/seed1")
    )
    results = variables["RESULTS"]
    assert _plan(["make", "-n", "table1"], variables)[-1].startswith(f"{variables['VENV']}/bin/repro table1")
    plan = _plan(["make", "-n", "table1", "PROTOCOL=reference"], variables)  # the paper-protocol runs don't count
    assert len(_runs(plan)) == 4
    train = next(line for line in plan if " train " in line)
    assert "--protocol reference" in train and f"--out {results}/table1-reference/runs/cmnist/" in train
    assert plan[-1].endswith(f"table1 --results {results}/table1-reference/runs --out {results}/table1-reference")


def test_make_table1_includes_each_setting_whose_data_is_present(tmp_path):
    variables = _layout(tmp_path, data=("modelnet40.h5", "nvgesture.h5"), weights=True)
    plan = _plan(["make", "-n", "table1"], variables)
    assert plan[0].endswith(f"prep cmnist --out {variables['DATA']}/cmnist.h5"), "missing CMNIST is prepared first"
    settings = [run[0] for run in _runs(plan)]
    assert settings == ["cmnist"] * 4 + ["modelnet40"] * 4 + ["nvgesture-scratch"] * 4 + ["nvgesture-pretrained"] * 4
    pretrained = [line for line in plan if "--setting nvgesture-pretrained" in line]
    assert all(f"--pretrained {variables['NVGESTURE_WEIGHTS']}" in line for line in pretrained)

    os.remove(variables["NVGESTURE_WEIGHTS"])
    (tmp_path / "data" / "modelnet40.h5").unlink()
    settings = {run[0] for run in _runs(_plan(["make", "-n", "table1"], variables))}
    assert settings == {"cmnist", "nvgesture-scratch"}, "no weights, no pretrained column; no data, no ModelNet40"


def test_make_table1_plans_the_methods_beyond_the_paper_on_every_setting_present(tmp_path):
    """`make table1 ALGORITHMS="$(BEYOND)"` trains OGM-GE, G-Blending, ModDrop and PMR wherever Table 1 has data."""
    variables = _layout(tmp_path, data=("cmnist.h5", "modelnet40.h5", "nvgesture.h5"), weights=True)
    variables["ALGORITHMS"] = "ogm_ge gblend moddrop pmr"
    variables["SEEDS"] = "0"
    runs = _runs(_plan(["make", "-n", "table1"], variables))
    settings = ("cmnist", "modelnet40", "nvgesture-scratch", "nvgesture-pretrained")
    assert runs == [(s, a, "0") for s in settings for a in ("ogm_ge", "gblend", "moddrop", "pmr")]


def test_train_target_runs_one_configured_run(tmp_path):
    variables = _layout(tmp_path, data=("cmnist.h5", "nvgesture.h5"))
    plan = _plan(["make", "-n", "train-nvgesture", "ALGORITHM=rubi", "SEED=2", "SETTING=scratch"], variables)
    assert _runs(plan) == [("nvgesture-scratch", "rubi", "2")]


def test_reproduce_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    variables = _layout(tmp_path, data=(), done=("cmnist/vanilla/seed0",))
    plan = _plan([str(ROOT / "reproduce.sh"), "--dry-run"], variables)
    assert plan[0].startswith("== plan for stages prep,train,table,figures")
    assert any(line.endswith(f"prep cmnist --out {variables['DATA']}/cmnist.h5") for line in plan)
    assert len(_runs(plan)) == 4, "all four runs: the data is missing, so even seed0's marker is out of date"
    assert plan[-4].startswith(f"{variables['VENV']}/bin/repro table1")
    assert plan[-3].startswith(f"{variables['VENV']}/bin/repro figures")
    assert plan[-2].startswith(f"for t in {variables['RESULTS']}/table1/runs/*/") and " curves " in plan[-2]
    assert not (tmp_path / "data" / "cmnist.h5").exists()

    only = _plan([str(ROOT / "reproduce.sh"), "--dry-run", "--stages", "figures"], variables)
    assert len(only) == 4 and "figures --results" in only[1] and " curves " in only[2]


def test_reproduce_rejects_an_unknown_stage():
    result = subprocess.run(
        [str(ROOT / "reproduce.sh"), "--stages", "prep,bogus"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown stage 'bogus'" in result.stderr


def test_dockerfile_installs_the_renderers_system_packages():
    from data_prep.render import SYSTEM_PACKAGES

    dockerfile = (ROOT / "Dockerfile").read_text()
    apt = re.search(r"apt-get install[^\n]*((?:\n[^\n]*\\)*\n[^\n]*)", dockerfile)
    assert apt, "the image installs its system packages with apt-get"
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", apt.group(0)))
    assert set(SYSTEM_PACKAGES) <= installed, f"missing in the Dockerfile: {set(SYSTEM_PACKAGES) - installed}"
