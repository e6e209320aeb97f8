# RegBench: the two set-up commands of the README.
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install install-test demo test bench-perf

install:
	./scripts/install.sh

demo: install
	$(PY) -m bench demo

test: install
	$(PY) -m pytest -q -x tests

bench-perf: install
	$(PY) -m pytest benchmarks --benchmark-only
