#!/usr/bin/env bash
# Everything that needs a GPU, as one script for a short lease of a GPU machine (< 5 minutes on
# one H200): build with the CUDA backend, run the GPU tests, train the Fashion-MNIST MLP on the
# GPU, and measure W2 and W3 there. Output goes to $OUT (the device tool's folder) or to
# benchmarks/results/gpu/.
#   tests/gpu/run_device_checks.sh
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/benchmarks/results/gpu}"
mkdir -p "$out"
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
{
  echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  echo "== build"
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDDP_CUDA=ON -DDDP_BUILD_BENCHMARKS=OFF \
    && cmake --build build-gpu -j "$(nproc)" --target ddp_train ddp_bench gpu_tests || exit 1
  echo "== GPU tests"
  build-gpu/tests/gpu_tests; echo "gpu_tests exit code $?"
  echo "== Fashion-MNIST MLP on the GPU, 3 epochs"
  timeout 120 build-gpu/ddp_train --config configs/fashion_mnist_mlp.yaml --run-dir /tmp/gpu_fmnist \
    --set training.device=cuda --set training.epochs=3 --set checkpoint.every_epochs=0
  for w in w2_fmnist_mlp w3_wide_mlp; do
    echo "== ddp_bench $w on the GPU"
    timeout 120 build-gpu/ddp_bench --config configs/$w.yaml --set training.device=cuda \
      --steps 200 --warmup 20 --json "$out/bench_$w.json" | grep -E '"samples_per_sec"|"backend"'
  done
  echo "== ddp_bench w3_wide_mlp on the GPU with TF32 GEMMs"
  timeout 120 build-gpu/ddp_bench --config configs/w3_wide_mlp.yaml --set training.device=cuda \
    --set training.tf32=true --steps 200 --warmup 20 | grep -E '"samples_per_sec"|"backend"'
  if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
    echo "== W3 on 2 GPUs (NCCL on its own stream)"
    timeout 120 mpirun -n 2 build-gpu/ddp_bench --config configs/w3_wide_mlp.yaml \
      --set training.device=cuda --set training.overlap=true --steps 100 --warmup 10 \
      | grep -E '"samples_per_sec"|"backend"'
  fi
} 2>&1 | tee "$out/device_checks.log"
