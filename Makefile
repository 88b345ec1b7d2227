# Two commands do everything on a fresh machine (Python 3.11+ with venv, and make):
#   make demo   run the cluster emulator and the example service, print the case table
#   make test   lint, type-check, run the whole test suite (tests/deploy builds the image with
#               buildah: Debian packages installed by scripts/install-image-tools.sh as root;
#               tests/devcluster runs Debian's kubectl: scripts/install-kubectl.sh; without
#               root, missing tools are skipped, except under CI=true), then package-test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest package-test fuzz soak config clean image-tools kubectl-tool \
	image-test bench bench-quick

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,deploy]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs the example service's extra, the emulator's and the ASGI adapter's with uvicorn
# (the [demo] extra), not the linters and test tools: a first `make demo` installs those only,
# saying so on one line.
DEMO_STAMP := $(VENV)/.installed-demo
$(DEMO_STAMP): setup.py pyproject.toml
	@echo "make demo: installing compass-auth[demo] into $(VENV) (once; about a minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[demo]'
	@touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m service demo

test: lint typecheck pytest package-test

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) image-tools kubectl-tool
	$(BIN)/pytest

# Build the wheel and the sdist, install them like a user into clean virtualenvs (no extras,
# [service], [testing]) and run the downstream example project (examples/downstream) against
# the [testing] install. About a minute with pip's cache warm.
package-test: $(STAMP)
	PYTHON=$(BIN)/python PYTHON3=$(PYTHON) bash scripts/check-package.sh

FUZZ_RUNS ?= 200000
fuzz: $(STAMP)  ## atheris on the verifier; prints "Done N runs"
	PYTHONPATH=. $(BIN)/python fuzz/fuzz_verify.py -runs=$(FUZZ_RUNS)

SOAK_ARGS ?=
REPLAY_ARGS ?=
soak: $(STAMP)  ## load and soak the example service, then replay one token per mode; figures in docs/reliability.md
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)
	$(BIN)/python -m benchmarks.replay $(REPLAY_ARGS)

config: $(STAMP)  ## regenerate config/auth.env and the docs/settings.md table from compass_auth/settings.py
	$(BIN)/python scripts/render_settings.py

# buildah and mmdebstrap for tests/deploy/test_image.py (only when missing). Without root they
# cannot be installed: one line says so and the image tests skip (under CI=true both fail).
image-tools:
	bash scripts/install-image-tools.sh

# Debian's kubectl for tests/devcluster/test_kubectl.py (only when missing).
kubectl-tool:
	bash scripts/install-kubectl.sh

# Only the image build and run (about a minute).
image-test: $(STAMP) image-tools
	$(BIN)/pytest tests/deploy/test_image.py

# The benchmark suite (docs/performance.md): wrk and the Go peer's toolchain and libraries
# (golang-go, go-oidc, Gin) from Debian's packages when missing, uvloop and matplotlib from the
# bench extra. About ten minutes; `make bench-quick` is the tiny CI setting, without the Go peer.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get install -y --no-install-recommends wrk || \
		(apt-get update && apt-get install -y --no-install-recommends wrk))
	bash benchmarks/gopeer/install.sh
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run --json docs/performance.json

bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run --quick --chart ''

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
