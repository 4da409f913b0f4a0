# Entry points for people: `make demo`, `make serve` (the live dashboard on the demo's store) and
# `make test`. All create .venv if needed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo serve test test-fast bench

$(BIN)/mediamon: setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/mediamon

install: $(BIN)/mediamon

demo: install
	$(BIN)/mediamon run configs/demo.yaml --summary out/demo-summary.json

# Opens nothing by itself: browse http://127.0.0.1:8080/ (Ctrl-C stops). PORT=8090 make serve
PORT ?= 8080
serve: install
	test -f out/demo/mediamon.db || $(MAKE) demo
	$(BIN)/mediamon serve configs/demo.yaml --port $(PORT)

test: install
	$(BIN)/python -m mypy pipeline transforms
	$(BIN)/python -m pytest -q tests

# pure and single-stage tests only (no jobs, emulator, browser or Prism): well under 30 s
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python -m benchmarks.pipeline_bench
	$(BIN)/python -m benchmarks.langid_bench
	$(BIN)/python -m benchmarks.topics_bench --articles 20000
	$(BIN)/python -m benchmarks.fetch_bench
	$(BIN)/python -m benchmarks.stream_bench
	$(BIN)/python -m benchmarks.serve_bench --articles 100000
