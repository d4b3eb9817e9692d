#!/usr/bin/env bash
# Proves the most portable configuration still builds, passes its unit tests and trains: CPU only
# (DDP_CUDA=OFF, so no CUDA or NCCL symbols even where the toolkit is present) for plain x86-64
# (no SSE 4.2, AVX or FMA: the SIMD kernels compile out and their tests skip), with warnings as
# errors. The default build targets the build machine, so without this test a construct that
# needs a newer ISA than x86-64 went unnoticed (an SSE 4.2 intrinsic did, for days).
#   tests/portable_cpu_build.sh [BUILD_DIR]     default: build-portable/ in the source tree
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-portable}"
# A unity build, as launch/setup.sh's (the library's files compiled eight to a unit).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDDP_CUDA=OFF -DDDP_ARCH=x86-64 \
      -DDDP_WERROR=ON -DCMAKE_UNITY_BUILD=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target ddp_train unit_tests bench_roofline >/dev/null
if nm -D "$build/ddp_train" | grep -qi -E "cuda|nccl"; then
  echo "FAIL: the CPU-only ddp_train references CUDA or NCCL"; exit 1
fi
# prefetchw is enabled for x86-64-v3 and -v4 only (CMakeLists.txt, Note [owned lines]): the
# oldest x86-64 CPUs may fault on it. (Not grep -q: under pipefail objdump's SIGPIPE would hide
# the match.)
if objdump -d "$build/ddp_train" | grep prefetchw >/dev/null; then
  echo "FAIL: the plain x86-64 ddp_train contains prefetchw"; exit 1
fi
"$build/tests/unit_tests" --gtest_brief=1
rm -rf "$build/run"  # a fresh run each time (an earlier run's checkpoints would be refused)
"$build/ddp_train" --config "$root/configs/seed_example.yaml" \
  --run-dir "$build/run" | grep "Epoch 10/10"
echo "portable CPU-only build: built with -Werror, unit tests passed, seed example trained"
