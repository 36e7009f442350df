# fraudstream: the two commands a new user needs are `make demo` and `make test`.
# Both create/update the virtual environment and fetch the Kafka broker's jars first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
FS     := $(VENV)/bin/fraudstream
# Keep pip's wheel cache (torch is large) outside the repo and reuse it between runs.
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PYTEST_ARGS ?=
# The CUDA tests run where there is a GPU; on a CPU-only machine `make test` leaves them out
# (the CPU path of the same code is tested everywhere) and says so.
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
NOT_CUDA := $(if $(HAVE_GPU),,and not cuda)

.PHONY: all venv kafka-jars tools test test-cuda test-rebalance test-fast demo bench evaluate clean

all: test

# Re-install only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --progress-bar off -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

kafka-jars: venv
	$(FS) kafka fetch

# Prometheus/promtool (Debian's package, unpacked) and the compose-spec validator, cached in
# ~/.cache/fraudstream/tools for the tests of deploy/ (tests/deploy); and the benchmark's load
# generator: kcat and pv (Debian's, unpacked) and pace (deploy/pace/pace.c, built with cc).
tools:
	bash deploy/install-tools.sh

test: venv kafka-jars tools
	@test -n "$(HAVE_GPU)" || echo "no GPU (nvidia-smi): the CUDA tests are left out; make test-cuda runs them on a GPU machine"
	$(PY) -m pytest $(if $(HAVE_GPU),,-m "not cuda") $(PYTEST_ARGS)

# The diffusion model's CUDA path (needs an NVIDIA GPU).
test-cuda: venv
	$(PY) -m pytest -m cuda $(PYTEST_ARGS)

# The two-worker rebalance test alone (README, "Known issues"), e.g. to repeat it.
test-rebalance: venv kafka-jars
	$(PY) -m pytest -s $(PYTEST_ARGS) \
		tests/stream/test_worker_resilience.py::test_second_worker_joins_and_first_leaves_mid_stream_without_losing_a_score

# Unit tests only (no broker).
test-fast: venv
	$(PY) -m pytest -m "not kafka $(NOT_CUDA)" $(PYTEST_ARGS)

demo: venv kafka-jars
	$(FS) demo $(DEMO_ARGS)

bench: venv kafka-jars tools
	$(FS) bench --json bench.json

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis var reports
