# RegBench: the two set-up commands of the README. Both install into a project-local virtual
# environment (.venv, created once and re-installed only when pyproject.toml, scripts/constraints/py3.X.txt,
# scripts/install.sh or the interpreter change) and never into the system Python.
# PY= picks the interpreter the venv is made with (`PY=/usr/bin/python3 make test`); default python3.
VENV ?= .venv
PY ?= python3
VPY := $(VENV)/bin/python

.PHONY: install install-test demo test bench-perf

install:
	PY="$(PY)" VENV="$(abspath $(VENV))" ./scripts/install.sh

# the tests also drive the Ray and SLURM (submitit) launchers, so they need those extras
install-test:
	PY="$(PY)" VENV="$(abspath $(VENV))" EXTRAS=test,ray,slurm ./scripts/install.sh

demo: install
	$(VPY) -m bench demo

test: install-test
	$(VPY) -m pytest -q tests

bench-perf: install
	$(VPY) -m pytest benchmarks --benchmark-only
