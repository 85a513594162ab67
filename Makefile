# `make app` and `make test` do all set-up from nothing: they create .venv from requirements.txt
# when it is missing (or when requirements.txt changed) and then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: app test venv results bench

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

app: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.headless true --browser.gatherUsageStats false

# The README's results table: SPG and SPG-plain (seeds 0 1 2) and the ablations (seed 0) on CPU,
# resumable; then the table in results/results.md.
results: $(STAMP)
	$(PY) scripts/results.py

bench: $(STAMP)
	$(PY) benchmarks/bench_eval.py
