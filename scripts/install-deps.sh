#!/usr/bin/env bash
# Installs what dslaunch needs to build and test on Debian 12, and nothing else.
# Idempotent: packages already present are left alone; prints one line when all is there.
set -euo pipefail

debian_packages=(
  cmake g++ make
  libboost1.81-dev     # Asio (store), Process v2 (spawning); header-only as we use them
  libcli11-dev         # command lines
  nlohmann-json3-dev   # ds_config.json, manifests, --dry_run
  catch2               # tests (v2, single header)
  libgloo-dev          # CPU collectives
  python3              # .py workers in tests, fixtures
  python3-venv         # scripts/test.sh: the cached venv holding torch and transformers for the interop tests
  gdb                  # supervisor test: a --debug_rank worker is released when a debugger attaches
)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all Debian packages present"
fi

# Python packages for tests only (tests/data/safetensors_interop.py checks our safetensors files
# against the reference implementation). Small PyPI packages; the tests that need them report
# "skipped" when they are missing, so a failed install warns instead of stopping the build.
python_packages=(numpy safetensors)
if command -v python3 >/dev/null; then
  if python3 -c "import numpy, safetensors" 2>/dev/null; then
    echo "install-deps: python packages present (${python_packages[*]})"
  else
    echo "install-deps: pip installing ${python_packages[*]} (for the safetensors interop tests)"
    pip_flags=(--quiet --disable-pip-version-check)
    # Plain install suits a pyenv python or a venv; Debian's own python3 refuses that (PEP 668)
    # and gets a --user install with --break-system-packages instead.
    python3 -m pip install "${pip_flags[@]}" "${python_packages[@]}" 2>/dev/null ||
      python3 -m pip install "${pip_flags[@]}" --user --break-system-packages "${python_packages[@]}" ||
      echo "install-deps: warning: could not pip install ${python_packages[*]}; the safetensors interop tests will be skipped" >&2
  fi
fi

# The cuDNN frontend (header-only C++ API over cuDNN's graph backend), for cuDNN's fused attention
# in lib/model/cuda/attention_cudnn.cu. The wheel on PyPI carries the headers under include/; only
# that folder is unpacked, into the cache dir lib/model/cuda/CMakeLists.txt looks in. 1.18.0 is
# built against cuDNN 9.x and runs on the 9.19 of /usr/local/cuda. Without it (offline, no pip) the
# build still succeeds and AttentionImpl::cudnn reports itself unsupported.
cudnn_frontend_version=1.18.0
cudnn_frontend_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dslaunch/cudnn-frontend"
if [ -f "$cudnn_frontend_dir/include/cudnn_frontend.h" ]; then
  echo "install-deps: cuDNN frontend headers present ($cudnn_frontend_dir/include)"
elif command -v python3 >/dev/null && command -v unzip >/dev/null; then
  wheel_dir="$(mktemp -d)"
  if python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheel_dir" \
      "nvidia-cudnn-frontend==$cudnn_frontend_version" >/dev/null 2>&1; then
    mkdir -p "$cudnn_frontend_dir"
    unzip -q -o "$wheel_dir"/nvidia_cudnn_frontend-*.whl 'include/*' -d "$cudnn_frontend_dir"
    echo "install-deps: cuDNN frontend $cudnn_frontend_version headers unpacked into $cudnn_frontend_dir/include"
  else
    echo "install-deps: warning: could not pip download nvidia-cudnn-frontend==$cudnn_frontend_version; cuDNN attention will not be built in" >&2
  fi
  rm -rf "$wheel_dir"
else
  echo "install-deps: warning: python3 and unzip are needed to fetch the cuDNN frontend headers; cuDNN attention will not be built in" >&2
fi
