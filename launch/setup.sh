#!/usr/bin/env bash
# Installs what ddp-trainer needs from Debian 12's packages (only what is missing, so it is cheap
# to rerun), then configures and builds into build/.
#   DDP_ARCH=x86-64-v3 launch/setup.sh   portable build instead of -march=native
#   DDP_WERROR=ON launch/setup.sh        warnings are errors (CI)
#   DDP_UNITY_BUILD=OFF launch/setup.sh  each .cpp of the library compiled on its own: slower from
#                                        scratch than the default unity build, quicker to rebuild
#                                        after editing one file
#   launch/setup.sh --test               also what only the tests use: Slurm and munge for the
#                                        one-node Slurm test (Debian may enable their services),
#                                        h5py for the Python module's Keras weights files
set -euo pipefail
cd "$(dirname "$0")/.."
test_packages=()
case "${1:-}" in
  --test) test_packages=(slurm-wlm munge python3-h5py) ;;
  "") ;;
  *) echo "setup: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
esac

packages=(g++ cmake make pkg-config python3 python3-yaml procps iproute2 openmpi-bin libopenmpi-dev libeigen3-dev libgtest-dev
          libyaml-cpp-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libdeflate-dev libzip-dev libbenchmark-dev
          libprotobuf-dev protobuf-compiler
          libopenblas-serial-dev libdnnl-dev clang libclang-rt-14-dev dataset-fashion-mnist
          pybind11-dev python3-dev python3-numpy)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
updated=0
# Installs those of the given packages that are missing; extra arguments for apt-get come first.
install_missing() {
  local options=() missing=() p
  while [[ "${1:-}" == --* ]]; do options+=("$1"); shift; done
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]}"
  ((updated)) || $sudo apt-get update -q
  updated=1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${options[@]}" "${missing[@]}"
}
install_missing "${packages[@]}"
# Slurm's recommended packages are dozens of plugins the test does not use.
((${#test_packages[@]} == 0)) || install_missing --no-install-recommends "${test_packages[@]}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDDP_ARCH="${DDP_ARCH:-native}" \
      -DDDP_WERROR="${DDP_WERROR:-OFF}" -DCMAKE_UNITY_BUILD="${DDP_UNITY_BUILD:-ON}"
cmake --build build -j "$(nproc)"
