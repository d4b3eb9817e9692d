#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for
# SECONDS (default 30) from its seed corpus in tests/fuzz/corpus/, one per core at a time. Any
# finding fails, and the input that triggered it is left in build-fuzz/findings/ to become a
# regression test.
#   tests/fuzz/run_fuzzers.sh [SECONDS [BUILD_DIR]]    BUILD_DIR default: build-fuzz/ in the
#   source tree (CTest passes one inside its build tree)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-30}"
build="${2:-$root/build-fuzz}"
command -v clang++ >/dev/null || { echo "run_fuzzers: clang++ not found (launch/setup.sh installs it)" >&2; exit 1; }
# -O1 with line tables only: sanitizer reports still name file and line, and the library (built
# whole, with ASan and UBSan) builds in 150 s on 2 cores where -O2 -g took 168 s. A unity build
# (the library's .cpp files compiled eight to a unit) parses the shared headers once a unit, and
# so builds the library quicker still.
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" -DDDP_FUZZ=ON -DDDP_CUDA=OFF \
      -DDDP_BUILD_TESTS=OFF -DDDP_BUILD_BENCHMARKS=OFF -DDDP_ARCH=x86-64-v2 \
      -DCMAKE_UNITY_BUILD=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_idx fuzz_csv fuzz_npy fuzz_npz fuzz_config \
      fuzz_keras fuzz_checkpoint fuzz_safetensors >/dev/null
mkdir -p "$build/findings"
targets=(idx csv npy npz config keras checkpoint safetensors)
# One fuzzer per core at a time: the same 30 s each, in about half the wall time on CI's 2 cores.
parallel="$(nproc)"
fuzz_one() {
  local target="$1" work="$build/corpus/$1"
  mkdir -p "$work"
  cp -n "$root/tests/fuzz/corpus/$target/"* "$work/" 2>/dev/null || true
  if "$build/tests/fuzz/fuzz_$target" "$work" -max_total_time="$seconds" -max_len=65536 \
       -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/findings/${target}-" \
       >"$build/fuzz_$target.log" 2>&1; then
    echo ok >"$build/fuzz_$target.status"
  else
    echo FAIL >"$build/fuzz_$target.status"
  fi
}
for target in "${targets[@]}"; do
  rm -f "$build/fuzz_$target.status"
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  fuzz_one "$target" &
done
wait
failed=0
passed=0
for target in "${targets[@]}"; do
  if [[ "$(cat "$build/fuzz_$target.status" 2>/dev/null)" == ok ]]; then
    echo "ok   fuzz_$target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$build/fuzz_$target.log")"
    passed=$((passed + 1))
  else
    echo "FAIL fuzz_$target: finding in $build/findings/ (log: $build/fuzz_$target.log)"
    tail -30 "$build/fuzz_$target.log"
    failed=$((failed + 1))
  fi
done
echo "fuzzers: $passed passed, $failed failed"
((failed == 0))
