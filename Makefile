# Reproduction of Wu et al. (ICML 2022). `make help` lists the targets.
# Every target sets up .venv itself (pinned dependencies from pyproject.toml). Targets are real files
# (prepared data, each run's `done` marker), so `make table1` redoes only what is missing.

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
INSTALLED := $(VENV)/.installed
REPRO    := $(BIN)/repro

DATA       ?= data
RESULTS    ?= results
# PROTOCOL=reference trains with the authors' code's gate means (--protocol reference, docs/fidelity.md) into
# results/table1-reference/; every run records both evaluation protocols either way.
PROTOCOL   ?= paper
TABLE1     := $(RESULTS)/table1$(if $(filter reference,$(PROTOCOL)),-reference)
RUNS       := $(TABLE1)/runs

# Raw datasets (not downloadable by script): set these to include ModelNet40 / NVGesture.
MODELNET40_RAW    ?=
NVGESTURE_RAW     ?=
NVGESTURE_WEIGHTS ?= weights/rgb_imagenet.pt

SEEDS      ?= 0 1 2
# The paper's four; the methods beyond the paper are BEYOND (make table1 ALGORITHMS="$(BEYOND)", or both lists).
PAPER_ALGORITHMS := vanilla rubi random guided
BEYOND     := ogm_ge gblend moddrop pmr
ALGORITHMS ?= $(PAPER_ALGORITHMS)
ALGORITHM  ?= guided
SEED       ?= 0
SETTING    ?= scratch
THREADS    ?= 0
TRAIN_ARGS ?=

# Sweeps (the paper's analyses): make sweep SWEEP=lr-greedy BUDGET=small WORKERS=2 THREADS=1 [PACK=8]
SWEEP    ?= lr-greedy
BUDGET   ?= full
LAUNCHER ?= local
WORKERS  ?= 1
PACK     ?= 1
SWEEPS   := $(RESULTS)/sweeps

.PHONY: help install test lint demo data train-cmnist train-modelnet40 train-nvgesture table1 table1-runs \
	figures sweep sweep-figures docker-build clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(INSTALLED)  ## create .venv with the pinned dependencies

test: lint  ## lint (code, Dockerfile, compose file), then run the test suite (CPU, a few minutes)
	$(BIN)/pytest -q

lint: $(INSTALLED)  ## ruff over the code, the import contracts (layers), hadolint, the Compose schema
	$(BIN)/ruff check repro data_prep tests scripts examples
	$(BIN)/ruff format --check repro data_prep tests scripts examples
	$(BIN)/lint-imports --no-logo
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

demo: $(INSTALLED)  ## the greedy effect on CMNIST in minutes on a CPU (results/demo/)
	$(REPRO) demo

# --- Prepared data ---
DATA_FILES := $(DATA)/cmnist.h5 $(if $(MODELNET40_RAW),$(DATA)/modelnet40.h5) $(if $(NVGESTURE_RAW),$(DATA)/nvgesture.h5)

data: $(DATA_FILES)  ## prepare CMNIST, and ModelNet40 / NVGesture when MODELNET40_RAW / NVGESTURE_RAW are set

$(DATA)/cmnist.h5: | $(INSTALLED)
	$(REPRO) prep cmnist --out $@

$(DATA)/modelnet40.h5: | $(INSTALLED)
	$(if $(MODELNET40_RAW),,$(error $@ is missing: set MODELNET40_RAW=/path/to/ModelNet40 to prepare it))
	$(REPRO) prep modelnet40 --raw $(MODELNET40_RAW) --out $@ --preview $(DATA)/modelnet40-preview.png

$(DATA)/nvgesture.h5: | $(INSTALLED)
	$(if $(NVGESTURE_RAW),,$(error $@ is missing: set NVGESTURE_RAW=/path/to/nvGesture to prepare it))
	$(REPRO) prep nvgesture --raw $(NVGESTURE_RAW) --out $@

# --- Training: one run per (setting, algorithm, seed) in $(RUNS)/<setting>/<algorithm>/seed<N>/ ---
# $(call train,DATASET,SETTING,ALGORITHM/seedN): the run's command; resumes from its checkpoint if interrupted.
train = $(REPRO) train --dataset $(1) --setting $(2) --algorithm $(word 1,$(subst /, ,$(3))) \
	--seed $(patsubst seed%,%,$(word 2,$(subst /, ,$(3)))) --protocol $(PROTOCOL) --threads $(THREADS) \
	--out $(RUNS)/$(2)/$(3) $(TRAIN_ARGS)

$(RUNS)/cmnist/%/done: $(DATA)/cmnist.h5 | $(INSTALLED)
	$(call train,cmnist,cmnist,$*) --data $<

$(RUNS)/modelnet40/%/done: $(DATA)/modelnet40.h5 | $(INSTALLED)
	$(call train,modelnet40,modelnet40,$*) --data $<

$(RUNS)/nvgesture-scratch/%/done: $(DATA)/nvgesture.h5 | $(INSTALLED)
	$(call train,nvgesture,nvgesture-scratch,$*) --data $<

$(RUNS)/nvgesture-pretrained/%/done: $(DATA)/nvgesture.h5 $(NVGESTURE_WEIGHTS) | $(INSTALLED)
	$(call train,nvgesture,nvgesture-pretrained,$*) --data $< --pretrained $(NVGESTURE_WEIGHTS)

train-cmnist: $(RUNS)/cmnist/$(ALGORITHM)/seed$(SEED)/done  ## one CMNIST run (ALGORITHM, SEED)
train-modelnet40: $(RUNS)/modelnet40/$(ALGORITHM)/seed$(SEED)/done  ## one ModelNet40 run (ALGORITHM, SEED)
train-nvgesture: $(RUNS)/nvgesture-$(SETTING)/$(ALGORITHM)/seed$(SEED)/done  ## one NVGesture run (ALGORITHM, SEED, SETTING=scratch|pretrained)

# --- Table 1: 4 algorithms x 3 seeds for every setting whose data is present or configured ---
has = $(or $(wildcard $(1)),$(2))
TABLE1_SETTINGS := cmnist \
	$(if $(call has,$(DATA)/modelnet40.h5,$(MODELNET40_RAW)),modelnet40) \
	$(if $(call has,$(DATA)/nvgesture.h5,$(NVGESTURE_RAW)),nvgesture-scratch \
		$(if $(wildcard $(NVGESTURE_WEIGHTS)),nvgesture-pretrained))
TABLE1_RUNS := $(foreach t,$(TABLE1_SETTINGS),$(foreach a,$(ALGORITHMS),$(foreach s,$(SEEDS),$(RUNS)/$(t)/$(a)/seed$(s)/done)))

table1-runs: $(TABLE1_RUNS)  ## train what is missing of Table 1 (every setting present, SEEDS x ALGORITHMS)

$(TABLE1)/table1.md: $(TABLE1_RUNS)
	$(REPRO) table1 --results $(RUNS) --out $(TABLE1)

table1: $(TABLE1)/table1.md  ## train what is missing of Table 1, then write results/table1/ (both evaluation protocols; PROTOCOL=reference: results/table1-reference/)

figures: $(INSTALLED)  ## histograms of d_util and d_speed of the Table-1 runs, and their per-epoch curves (results/figures/table1/)
	$(REPRO) figures --results $(RUNS) --out $(RESULTS)/figures/$(notdir $(TABLE1))
	for t in $(RUNS)/*/; do [ -d "$$t" ] || continue; $(REPRO) curves "$$t" \
		--out $(RESULTS)/figures/$(notdir $(TABLE1)) --name "curves-$$(basename $$t)" || exit 1; done

# --- Sweeps: the studies of Figs. 2-4 and A.2-A.7 (repro sweep --help); resumable, failed runs kept apart ---
sweep: $(INSTALLED)  ## one study: SWEEP (lr-greedy, lr-vs-dutil, guided-vs-vanilla, random-vs-vanilla, l1, window, tolerance, protocol, beyond-paper), BUDGET=full|small, LAUNCHER=local|slurm|dry, WORKERS, THREADS, PACK (K CMNIST runs per network)
	$(REPRO) sweep $(SWEEP) --launcher $(LAUNCHER) --budget $(BUDGET) --workers $(WORKERS) --threads $(THREADS) \
		--pack $(PACK) --results $(SWEEPS) --data-dir $(DATA)

sweep-figures: $(INSTALLED)  ## every swept study's figures and the conjecture report (results/figures/sweeps/)
	$(REPRO) figures --results $(SWEEPS) --out $(RESULTS)/figures/sweeps

docker-build:  ## build the CUDA image (docker compose build)
	docker compose build

clean:  ## remove caches (keeps data/ and results/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
