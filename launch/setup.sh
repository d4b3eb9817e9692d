#!/usr/bin/env bash
# Installs what ddp-trainer needs from Debian 12's packages (only what is missing, so it is cheap
# to rerun), then configures and builds into build/.
#   DDP_ARCH=x86-64-v3 launch/setup.sh   portable build instead of -march=native
#   DDP_WERROR=ON launch/setup.sh        warnings are errors (CI)
#   launch/setup.sh --test               also what only the tests use: Slurm and munge for the
#                                        one-node Slurm test (Debian may enable their services)
set -euo pipefail
cd "$(dirname "$0")/.."
test_packages=()
case "${1:-}" in
  --test) test_packages=(slurm-wlm munge) ;;
  "") ;;
  *) echo "setup: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
esac

packages=(g++ cmake make pkg-config python3 python3-yaml procps iproute2 openmpi-bin libopenmpi-dev libeigen3-dev libgtest-dev
          libyaml-cpp-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libbenchmark-dev
          libopenblas-serial-dev libdnnl-dev clang libclang-rt-14-dev dataset-fashion-mnist
          "${test_packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDDP_ARCH="${DDP_ARCH:-native}" \
      -DDDP_WERROR="${DDP_WERROR:-OFF}"
cmake --build build -j "$(nproc)"
