# Two commands do everything on a fresh machine (Python 3.11+ with venv, and make):
#   make demo   run the cluster emulator and the example service, print the case table
#   make test   lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest fuzz soak config clean

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m service demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

FUZZ_RUNS ?= 200000
fuzz: $(STAMP)  ## atheris on the verifier; prints "Done N runs"
	PYTHONPATH=. $(BIN)/python fuzz/fuzz_verify.py -runs=$(FUZZ_RUNS)

SOAK_ARGS ?=
soak: $(STAMP)  ## load and soak the example service; figures in docs/reliability.md
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

config: $(STAMP)  ## regenerate config/auth.env from service/auth/settings.py
	$(BIN)/python -c "from service.auth.settings import render_env_file as r; print(r(), end='')" > config/auth.env

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
