#!/usr/bin/env bash
# Everything that needs a GPU, as one script for a short lease of a GPU machine (< 5 minutes on
# one H200): the GPU tests, the Fashion-MNIST MLP trained on the GPU and on the CPU (accuracy
# bound and GPU-vs-CPU agreement), W2 and W3 throughput on the GPU. It ends with one verdict line
# and exits non-zero when any check failed; the log and the benchmark JSON go to $OUT (the device
# tool's folder) or to benchmarks/results/gpu/.
#   tests/gpu/run_device_checks.sh [BUILD_DIR]
# With two GPUs or more it also runs NCCL across 2 ranks (gpu_nccl_tests, W3 on 2 GPUs).
# BUILD_DIR: a build with the CUDA backend (a machine without the build dependencies can run one
# made elsewhere); without it the script configures and builds build-gpu/ here.
# FMNIST_DIR: where the Fashion-MNIST files are (default /usr/share/datasets/fashion-mnist).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/benchmarks/results/gpu}"
data="${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
mkdir -p "$out"
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1
log="$out/device_checks.log"
: >"$log"
passed=()
failed=()

# check NAME COMMAND...: runs COMMAND with its output in the log, records the outcome.
check() {
  local name="$1"
  shift
  echo "== $name" | tee -a "$log"
  "$@" >>"$log" 2>&1
  local code=$?
  if ((code == 0)); then
    passed+=("$name")
    echo "ok: $name" | tee -a "$log"
  else
    failed+=("$name")
    echo "FAIL: $name (exit code $code)" | tee -a "$log"
  fi
}

build_here() {
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDDP_CUDA=ON -DDDP_BUILD_BENCHMARKS=OFF &&
    cmake --build build-gpu -j "$(nproc)" --target ddp_train ddp_bench gpu_tests gpu_nccl_tests
}

# train DEVICE: the Fashion-MNIST MLP for 3 epochs, metrics in /tmp/fmnist_DEVICE.
train() {
  rm -rf "/tmp/fmnist_$1"  # a fresh run each time (an earlier run's checkpoints would be refused)
  timeout 300 "$build/ddp_train" --config configs/fashion_mnist_mlp.yaml \
    --run-dir "/tmp/fmnist_$1" --set training.device="$1" --set training.epochs=3 \
    --set checkpoint.every_epochs=0 \
    --set data.train.images="$data/train-images-idx3-ubyte.gz" \
    --set data.train.labels="$data/train-labels-idx1-ubyte.gz" \
    --set data.test.images="$data/t10k-images-idx3-ubyte.gz" \
    --set data.test.labels="$data/t10k-labels-idx1-ubyte.gz"
}

# Final val_accuracy of both runs: the GPU's at least 0.84 and within 0.01 of the CPU's.
compare_accuracy() {
  python3 - /tmp/fmnist_cuda/metrics.jsonl /tmp/fmnist_cpu/metrics.jsonl <<'EOF'
import json, sys
gpu, cpu = (json.loads(open(p).read().splitlines()[-1])["val_accuracy"] for p in sys.argv[1:])
print(f"val_accuracy after 3 epochs: cuda {gpu:.4f}, cpu {cpu:.4f}")
sys.exit(0 if gpu >= 0.84 and abs(gpu - cpu) <= 0.01 else 1)
EOF
}

bench() {  # bench NAME CONFIG [--set ...]
  local name="$1" config="$2"
  shift 2
  timeout 180 "$build/ddp_bench" --config "configs/$config.yaml" --set training.device=cuda \
    --steps 200 --warmup 20 --json "$out/bench_$name.json" "$@"
}

{
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  lscpu | grep -E "Model name|^CPU\(s\)"
} >>"$log" 2>&1

build="${1:-}"
if [[ -z "$build" ]]; then
  build=build-gpu
  check "build with CUDA" build_here
fi
# A packed build (tests/gpu/pack_for_device.sh) names its commit; a tree's checkout, its own.
if [[ -f /opt/ddp/real/commit && "$build" == /opt/ddp/build ]]; then
  echo "build of commit $(cat /opt/ddp/real/commit)" >>"$log"
else
  git -C "$root" log -1 --format="commit %H %cd" >>"$log" 2>&1
fi
check "GPU tests" "$build/tests/gpu_tests"
check "Fashion-MNIST on the GPU, 3 epochs" train cuda
check "Fashion-MNIST on the CPU, 3 epochs" train cpu
check "GPU accuracy >= 0.84 and within 0.01 of the CPU" compare_accuracy
check "ddp_bench W2 on the GPU" bench w2 w2_fmnist_mlp \
  --set data.train.images="$data/train-images-idx3-ubyte.gz" \
  --set data.train.labels="$data/train-labels-idx1-ubyte.gz"
check "ddp_bench W3 on the GPU" bench w3 w3_wide_mlp
check "ddp_bench W3 on the GPU, TF32" bench w3_tf32 w3_wide_mlp --set training.tf32=true
if (($(nvidia-smi -L 2>/dev/null | wc -l) >= 2)); then
  check "NCCL across 2 GPUs" mpirun -n 2 "$build/tests/gpu_nccl_tests"
  check "ddp_bench W3 on 2 GPUs, overlapped" mpirun -n 2 "$build/ddp_bench" \
    --config configs/w3_wide_mlp.yaml --set training.device=cuda --set training.overlap=true \
    --steps 100 --warmup 10 --json "$out/bench_w3_2gpus.json"
else
  echo "note: fewer than 2 GPUs: the NCCL checks across ranks did not run" | tee -a "$log"
fi
grep -h -E '"samples_per_sec"|"backend"' "$out"/bench_*.json >>"$log" 2>/dev/null

verdict="device checks: ${#passed[@]} passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  verdict+=": $(printf '%s; ' "${failed[@]}")"
  verdict="${verdict%; }"
fi
echo "$verdict" | tee -a "$log"
((${#failed[@]} == 0))
