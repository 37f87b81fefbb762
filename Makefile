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
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	@# pip byte-compiles one file at a time; compileall on every core halves the install. Bytecode is
	@# written now because jobs may not write it (PYTHONDONTWRITEBYTECODE) and would then compile torch
	@# at every start. The few files that do not compile (tests of other Pythons) pip skips too.
	$(BIN)/python -c "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)" $(VENV)/lib
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
