# Reproduction of Wu et al. (ICML 2022). `make help` lists the targets.
# Every target sets up .venv itself (pinned dependencies from pyproject.toml).

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
INSTALLED := $(VENV)/.installed
REPRO    := $(BIN)/repro

SEEDS      ?= 0 1 2
ALGORITHMS ?= vanilla rubi random guided
THREADS    ?= 0
TRAIN_ARGS ?=
RESULTS    ?= results

.PHONY: help install test lint demo table1 clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(INSTALLED)  ## create .venv with the pinned dependencies

test: $(INSTALLED)  ## lint, then run the test suite (CPU, a few minutes)
	$(BIN)/ruff check repro data_prep tests
	$(BIN)/pytest -q

lint: $(INSTALLED)  ## ruff over the code
	$(BIN)/ruff check repro data_prep tests

demo: $(INSTALLED)  ## the greedy effect on CMNIST in minutes on a CPU (results/demo/)
	$(REPRO) demo

data/cmnist.h5: | $(INSTALLED)
	$(REPRO) prep cmnist --out $@

# ModelNet40 needs the mesh tree, downloaded by hand: make data/modelnet40.h5 MODELNET40_RAW=/path/to/ModelNet40
data/modelnet40.h5: | $(INSTALLED)
	@test -n "$(MODELNET40_RAW)" || { echo "set MODELNET40_RAW=/path/to/ModelNet40 (the mesh tree)"; exit 1; }
	$(REPRO) prep modelnet40 --raw $(MODELNET40_RAW) --out $@ --preview data/modelnet40-preview.png

# --- Table 1: 4 algorithms x 3 seeds with the paper's settings, per dataset whose prepared data is present ---
TABLE1_DATASETS := cmnist $(if $(wildcard data/modelnet40.h5),modelnet40)
TABLE1_RUNS := $(foreach d,$(TABLE1_DATASETS),$(foreach a,$(ALGORITHMS),$(foreach s,$(SEEDS),\
	$(RESULTS)/table1/runs/$(d)/$(a)/seed$(s)/done)))

$(RESULTS)/table1/runs/cmnist/%/done: data/cmnist.h5 | $(INSTALLED)
	$(REPRO) train --dataset cmnist --algorithm $(word 1,$(subst /, ,$*)) \
		--seed $(patsubst seed%,%,$(word 2,$(subst /, ,$*))) --threads $(THREADS) --out $(dir $@) $(TRAIN_ARGS)

$(RESULTS)/table1/runs/modelnet40/%/done: data/modelnet40.h5 | $(INSTALLED)
	$(REPRO) train --dataset modelnet40 --algorithm $(word 1,$(subst /, ,$*)) \
		--seed $(patsubst seed%,%,$(word 2,$(subst /, ,$*))) --threads $(THREADS) --out $(dir $@) $(TRAIN_ARGS)

$(RESULTS)/table1/table1.md: $(TABLE1_RUNS)
	$(REPRO) table1 --results $(RESULTS)/table1/runs --out $(RESULTS)/table1

table1: $(RESULTS)/table1/table1.md  ## train what is missing of Table 1, then write results/table1/

clean:  ## remove caches (keeps data/ and results/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
