# Two commands on a fresh machine:  make demo  (set up .venv and run the demo pipeline)
#                                   make test  (set up .venv and run the test suite)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: venv demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/snakemake --cores $(CORES)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/snakemake --lint

bench: venv
	$(BIN)/python bench/bench_frames.py
	$(BIN)/python bench/bench_faces.py

clean:
	rm -rf results logs benchmarks resources .snakemake
