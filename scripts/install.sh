#!/usr/bin/env bash
# Installs RegBench into a project-local virtual environment (.venv) and never into the system
# Python (PEP 668). Safe to run again: it re-installs only when pyproject.toml, the constraints file
# or this script changed (a stamp file in the venv holds their hash).
#
# Exact versions come from scripts/constraints/py3.X.txt, the file of the interpreter's minor (written by
# scripts/lock.sh for 3.X.0, so Debian 12's 3.11.2 is covered as well as pyenv's 3.11.7). A Python
# without such a file gets one line saying so and the open ranges of pyproject.toml.
#
#   scripts/install.sh            # .venv with the package, its test extra and robustbench
#   VENV=/path scripts/install.sh # another location;  PY=python3.12 picks the interpreter
#   CONSTRAINTS=FILE              # other pins (CONSTRAINTS= : none, the open ranges)
#   EXTRAS=test,ray,slurm         # extras to install (default: test)
#   TORCH_INDEX=URL               # a torch wheel index (default: the CPU index when no NVIDIA GPU;
#                                 # PyPI's CUDA build is the fallback and the choice with a GPU)
#
# apt is used only for what must come from apt: Debian's dataset-fashion-mnist (the offline data)
# and python3-venv where `python -m venv` is missing. It runs as root, or through sudo when sudo
# works without a password prompt; otherwise the script prints the command to run and goes on.
#
# torchattacks 3.5.1 pins requests~=2.25.1 (requests 2.25 misses the fixes of CVE-2023-32681 and
# CVE-2024-35195) and ships a stale copy of robustbench/. torchattacks itself never imports
# requests: only that stale copy does. So we rebuild its wheel locally (`wheel unpack` / `wheel pack`,
# the tool meant for editing a wheel's metadata) with the pin relaxed to requests>=2.32 and without
# the robustbench/ copy, as version 3.5.1+regbench1. `pip check` stays clean and robustbench 1.1.1's
# own files are the only robustbench on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-python3}
VENV=${VENV:-$ROOT/.venv}
EXTRAS=${EXTRAS:-test}
STAMP="$VENV/.regbench-install-stamp"

say() { echo "[install] $*"; }

minor=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || { say "error: cannot run the Python interpreter '$PY' (set PY= to a python3.10 ... python3.13 that runs)"; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { say "error: $PY is Python $minor; RegBench needs Python >= 3.10 (pyproject.toml requires-python)"; exit 1; }
if [ -z "${CONSTRAINTS+set}" ]; then
  CONSTRAINTS=$ROOT/scripts/constraints/py$minor.txt
  [ -f "$CONSTRAINTS" ] || { say "no pins for Python $minor (looked for scripts/constraints/py$minor.txt): installing the open ranges of pyproject.toml"; CONSTRAINTS=; }
fi

as_root() {  # run a command as root: directly, or with passwordless sudo; else print it
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else say "needs root, skipped; run it yourself: $*"; return 1; fi
}

want_hash=$(cat pyproject.toml ${CONSTRAINTS:+"$CONSTRAINTS"} scripts/install.sh 2>/dev/null | sha256sum | cut -c1-16)-$EXTRAS-$("$PY" -c 'import sys; print(sys.version.split()[0])')
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ] && [ -x "$VENV/bin/python" ]; then
  say "$VENV is up to date (pyproject.toml unchanged); nothing to do"
  exit 0
fi

# 1. Debian packages: the offline Fashion-MNIST, and venv support where missing.
if command -v apt-get >/dev/null 2>&1; then
  need=()
  [ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
  "$PY" -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
  if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } \
      || say "warning: could not install ${need[*]} (Fashion-MNIST then needs --data-dir)"
  fi
fi

# 2. The virtual environment (made with $PY; one made with another Python is not silently reused).
if [ -x "$VENV/bin/python" ]; then
  have=$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo "?")
  want=$("$PY" -c 'import sys; print(sys.version.split()[0])')
  if [ "$have" != "$want" ]; then
    say "error: $VENV was made with Python $have, not $PY's $want: remove it (rm -rf $VENV) or pick another folder (VENV=...)"
    exit 1
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip wheel 2>&1 | grep -v "^WARNING: Location" || true
PIPC=("$VPY" -m pip install -q)
if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { say "error: no constraints file $CONSTRAINTS"; exit 1; }
  PIPC+=(-c "$CONSTRAINTS"); say "pins: ${CONSTRAINTS#"$ROOT"/}"
fi

# Runs a command, shows its output minus pip's find-links noise, and returns the command's own status
# (a plain `cmd | grep || true` would hide a failure under `set -o pipefail`).
quiet() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | grep -v -e "^WARNING: Location" -e "^WARNING: Retrying" || true
  return "$rc"
}

# 3. torch: a CPU build without an NVIDIA GPU, PyPI's (CUDA) build with one. The CPU index is an
#    *extra* index: torch's own dependencies still come from the default index (at the pinned versions),
#    and pip prefers X+cpu over X. When that index cannot be reached, pip falls back to the default
#    index's build; the line below says which build was installed.
if ! "$VPY" -c "import torch, torchvision" 2>/dev/null; then
  idx=${TORCH_INDEX:-}
  if [ -z "$idx" ] && ! command -v nvidia-smi >/dev/null 2>&1; then idx=https://download.pytorch.org/whl/cpu; fi
  if [ -n "$idx" ]; then
    quiet "${PIPC[@]}" --timeout 15 --retries 1 --extra-index-url "$idx" torch torchvision \
      || { say "torch from $idx failed: torch from the default index"; quiet "${PIPC[@]}" torch torchvision; }
  else
    quiet "${PIPC[@]}" torch torchvision
  fi
  say "$("$VPY" -c 'import torch; print("torch", torch.__version__, "(CUDA build)" if torch.version.cuda else "(CPU build)")')"
fi

# 4. torchattacks, rebuilt without the requests pin and the stale robustbench/ copy (see above).
if ! "$VPY" -m pip show torchattacks 2>/dev/null | grep -q "^Version: .*+regbench"; then
  wd=$(mktemp -d)
  quiet "$VPY" -m pip download -q --no-deps -d "$wd" "torchattacks==3.5.1"
  (cd "$wd" && "$VPY" -m wheel unpack -d un torchattacks-3.5.1-py3-none-any.whl >/dev/null)
  d="$wd/un/torchattacks-3.5.1"
  rm -rf "$d/robustbench"
  sed -i -e 's/^Requires-Dist: requests (~=2.25.1)$/Requires-Dist: requests (>=2.32)/' \
         -e 's/^Version: 3.5.1$/Version: 3.5.1+regbench1/' "$d/torchattacks-3.5.1.dist-info/METADATA"
  mv "$d/torchattacks-3.5.1.dist-info" "$d/torchattacks-3.5.1+regbench1.dist-info"
  mv "$d" "$wd/un/torchattacks-3.5.1+regbench1"
  mkdir -p "$wd/dist"  # `wheel pack` writes a fresh RECORD
  "$VPY" -m wheel pack -d "$wd/dist" "$wd/un/torchattacks-3.5.1+regbench1" >/dev/null
  quiet "${PIPC[@]}" --force-reinstall --no-deps "$wd"/dist/torchattacks-*.whl
  rm -rf "$wd"
  say "torchattacks 3.5.1+regbench1 (requests>=2.32, no bundled robustbench/)"
fi

# 5. The package (editable), its extras, robustbench 1.1.1 (needs setuptools<81 for pkg_resources).
quiet "${PIPC[@]}" -e ".[${EXTRAS},robustbench]"
quiet "${PIPC[@]}" "requests>=2.32" "urllib3>=2"
"$VPY" -m pip check
echo "$want_hash" > "$STAMP"
say "done: $VENV ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"
say "use it with: $VENV/bin/python -m bench --help   (or: source $VENV/bin/activate)"
