# `make app` and `make test` do all set-up from nothing: they create .venv from requirements.txt
# when it is missing (or when requirements.txt or pyproject.toml changed), install this checkout
# into it as the editable package `spg-explorer` (`spg_core`, the `spg` command) and then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test test-fast lint venv results bench

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The whole suite; test-fast, the edit-test loop, leaves out the tests marked slow (the notebooks,
# the real browser, torchrun and CUDA, real training, re-evaluating the shipped runs, the seed-analysis script).
test: $(STAMP)
	$(PY) -m pytest -q --durations=25 tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(PY) -m ruff check .

app: $(STAMP)
	$(PY) -m spg_app.serve --server.headless true --browser.gatherUsageStats false $(ARGS)

# The README's results: SPG and SPG-plain with the teaching recipe (configs/teaching.yaml: tiny
# from scratch, SPG-C's input BatchNorm, A3 dilated), with the ImageNet-pretrained lite0_cut
# (configs/teaching_lite0.yaml) and with the library's defaults (configs/library_defaults.yaml),
# seeds 0 1 2, one CPU thread per run (as the tables were made: the thread count changes a
# run's floating-point sums, and with them what it learns), on the three benchmark variants,
# and the recipe's ablations (seeds 0 1 2, premise-holds). CPU, resumable (a run that exists is
# scored, not retrained); tables in results/teaching*/results.md and results/defaults/results.md.
BENCHMARKS := premise-holds part-inside premise-fails
results: $(STAMP)
	$(PY) scripts/results.py --config configs/teaching.yaml --benchmarks $(BENCHMARKS) \
		--variants plain spg no-cascade no-share no-c --ablation-benchmarks premise-holds --ablation-seeds 0 1 2 \
		--set threads=1 --runs-root results/runs-teaching --out results/teaching
	$(PY) scripts/results.py --config configs/teaching_lite0.yaml --benchmarks $(BENCHMARKS) \
		--variants plain spg --set threads=1 --runs-root results/runs-teaching-lite0 --out results/teaching-lite0
	$(PY) scripts/results.py --config configs/library_defaults.yaml --benchmarks $(BENCHMARKS) \
		--variants plain spg --set threads=1 --runs-root results/runs-defaults --out results/defaults

bench: $(STAMP)
	$(PY) benchmarks/bench_eval.py
