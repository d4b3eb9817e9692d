#!/usr/bin/env bash
# Proves the CPU-only configuration still builds and trains where the CUDA toolkit is present
# (the default build then includes the CUDA backend): configure with DDP_CUDA=OFF in
# build-cpu-only/, build ddp_train, run the seed example.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmake -S "$root" -B "$root/build-cpu-only" -DDDP_CUDA=OFF -DDDP_BUILD_TESTS=OFF \
      -DDDP_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$root/build-cpu-only" -j "$(nproc)" --target ddp_train >/dev/null
if nm -D "$root/build-cpu-only/ddp_train" | grep -qi -E "cuda|nccl"; then
  echo "FAIL: the CPU-only ddp_train references CUDA or NCCL"; exit 1
fi
"$root/build-cpu-only/ddp_train" --config "$root/configs/seed_example.yaml" \
  --run-dir "$root/build-cpu-only/run" | grep "Epoch 10/10"
echo "cpu-only build: 1 passed, 0 failed"
