# RegBench: the two set-up commands of the README. Both install into a project-local virtual
# environment (.venv, created once and re-installed only when pyproject.toml, scripts/constraints/py3.X.txt
# or scripts/install.sh change) and never into the system Python.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-test demo test bench-perf

install:
	VENV="$(abspath $(VENV))" ./scripts/install.sh

# the tests also drive the Ray and SLURM (submitit) launchers, so they need those extras
install-test:
	VENV="$(abspath $(VENV))" EXTRAS=test,ray,slurm ./scripts/install.sh

demo: install
	$(PY) -m bench demo

test: install-test
	$(PY) -m pytest -q tests

bench-perf: install
	$(PY) -m pytest benchmarks --benchmark-only
