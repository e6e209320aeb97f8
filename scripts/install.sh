#!/usr/bin/env bash
# Installs RegBench and everything its tests need on a fresh Debian machine (run as root or with sudo).
# Order matters: torchattacks 3.5.1 ships an old copy of robustbench/; robustbench 1.1.1 is installed
# after it so its own files win (a test checks this), and setuptools<81 keeps pkg_resources for it.
set -euo pipefail
PY=${PY:-python3}
if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq dataset-fashion-mnist || echo "warning: could not install dataset-fashion-mnist"
fi
$PY -m pip install -q "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
$PY -m pip install -q -e ".[test]"
$PY -m pip install -q "setuptools<81" "robustbench==1.1.1"
$PY -m pip install -q -e ".[ray,slurm]"
