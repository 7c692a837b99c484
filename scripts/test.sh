#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test (CTest). Extra arguments go to
# ctest, e.g. `scripts/test.sh -L launch` or `scripts/test.sh -R store`.
#
# The interop tests (unmodified torch workers on our store and under dslaunch, transformers loading
# our checkpoints) need torch and transformers: they are installed once into a venv outside the
# clone, $DS_TORCH_VENV (default ${XDG_CACHE_HOME:-~/.cache}/dslaunch/venv-torch), and reused by
# every later run and every clone. DS_NO_TORCH=1 skips the install, and those tests report Skipped
# with that reason; a DS_TEST_PYTHON already set is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# Pinned to what the GPU machines run (torch 2.11, the wire protocol docs/store.md is pinned to).
# Changing a pin here reinstalls on the next run (the venv's stamp file records what it holds).
torch_version=2.11.0
transformers_version=5.25.0
torch_pins=("torch==$torch_version" "transformers==$transformers_version" numpy==2.4.6 safetensors==0.8.0)
if [ "${DS_NO_TORCH:-0}" = 1 ]; then
  echo "test.sh: DS_NO_TORCH=1: the torch and transformers interop tests report Skipped"
  export DS_NO_TORCH=1
elif [ -n "${DS_TEST_PYTHON:-}" ]; then
  echo "test.sh: the interop tests run $DS_TEST_PYTHON (DS_TEST_PYTHON)"
else
  venv=${DS_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dslaunch/venv-torch}
  stamp="$venv/dslaunch-pins.txt"
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9  # two runs at once: the second waits for the first's install, then finds it done
  if [ "$(cat "$stamp" 2>/dev/null)" != "${torch_pins[*]}" ] || ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    echo "test.sh: installing torch $torch_version and transformers $transformers_version into $venv for the interop tests (once, ~5 GB; DS_NO_TORCH=1 skips them)"
    started=$SECONDS
    rm -f "$stamp"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "${torch_pins[@]}" || {
      echo "test.sh: error: could not pip install ${torch_pins[*]} into $venv; fix the cause (network, disk) or run with DS_NO_TORCH=1 to skip the interop tests" >&2
      exit 1
    }
    echo "${torch_pins[*]}" >"$stamp"
    echo "test.sh: installed into $venv in $((SECONDS - started)) s"
  fi
  exec 9>&-
  export DS_TEST_PYTHON="$venv/bin/python"
  echo "test.sh: the interop tests run $DS_TEST_PYTHON (torch $torch_version, transformers $transformers_version)"
fi

build_dir=${DS_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@"
