#!/usr/bin/env bash
# Proves the CPU-only configuration still builds and trains where the CUDA toolkit is present
# (the default build then includes the CUDA backend): configure with DDP_CUDA=OFF in BUILD_DIR
# (CTest passes one inside its build tree), build ddp_train, run the seed example.
#   tests/cpu_only_build.sh [BUILD_DIR]     default: build-cpu-only/ in the source tree
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-cpu-only}"
cmake -S "$root" -B "$build" -DDDP_CUDA=OFF -DDDP_BUILD_TESTS=OFF \
      -DDDP_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target ddp_train >/dev/null
if nm -D "$build/ddp_train" | grep -qi -E "cuda|nccl"; then
  echo "FAIL: the CPU-only ddp_train references CUDA or NCCL"; exit 1
fi
rm -rf "$build/run"  # a fresh run each time (an earlier run's checkpoints would be refused)
"$build/ddp_train" --config "$root/configs/seed_example.yaml" \
  --run-dir "$build/run" | grep "Epoch 10/10"
echo "cpu-only build: 1 passed, 0 failed"
