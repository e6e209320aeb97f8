#!/usr/bin/env bash
# Regenerates scripts/constraints/py3.X.txt: one set of exact pins per Python minor the package
# declares (3.10 to 3.13), resolved by uv for that minor's *first* release (3.X.0) on x86_64 Linux
# (manylinux_2_28), so a pin never needs a newer patch release than the one a distribution ships
# (Debian 12's 3.11.2 included) and every pinned wheel exists for that minor. scripts/install.sh picks
# the file of the running Python; a minor without a file installs the open ranges of pyproject.toml.
# The current files are the preferences: a pin changes only where it must (or where you bump it).
#
#   scripts/lock.sh                 # needs uv (pip install uv, into any throwaway venv) and PyPI
#   UV=/tmp/uvenv/bin/uv scripts/lock.sh
#
# Not pinned: regbench itself, torchattacks (rebuilt locally as 3.5.1+regbench1 by install.sh; its
# requests~=2.25.1 pin is overridden here so the resolution matches that rebuild), and torch's CUDA
# runtime wheels (nvidia-*, cuda-*, triton), which follow the torch pin and the build (CPU or CUDA)
# install.sh picks; `torch==X` also matches the CPU index's `X+cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
MINORS=${MINORS:-"3.10 3.11 3.12 3.13"}
mkdir -p scripts/constraints
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "requests>=2.32" > "$tmp/overrides.txt"
for m in $MINORS; do
  f=scripts/constraints/py$m.txt
  [ -f "$f" ] && cp "$f" "$tmp/out.txt" || : > "$tmp/out.txt"
  "$UV" pip compile -q pyproject.toml --extra test --extra robustbench --extra ray --extra slurm \
    --override "$tmp/overrides.txt" --python-version "$m.0" --python-platform x86_64-manylinux_2_28 \
    --no-header --no-annotate -o "$tmp/out.txt"
  {
    echo "# Exact pins for Python $m (any patch release from $m.0), written by scripts/lock.sh: uv pip compile"
    echo "# of pyproject.toml with the extras test, robustbench, ray and slurm, for x86_64 Linux. Used by"
    echo "# scripts/install.sh (pip install -c); regenerate with scripts/lock.sh, never by hand."
    grep -v -E '^(nvidia-|cuda-|triton==|torchattacks==|regbench==|-e )' "$tmp/out.txt"
  } > "$f"
  echo "[lock] $f: $(grep -c '==' "$f") pins"
done
