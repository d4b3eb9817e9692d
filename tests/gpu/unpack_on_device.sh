#!/usr/bin/env bash
# Installs what tests/gpu/pack_for_device.sh packed into .device/ on the GPU machine, and writes
# wrappers /opt/ddp/build/{ddp_train,ddp_bench,tests/gpu_tests,tests/gpu_nccl_tests} that run the
# packed executables with the packed libraries and the device's own CUDA libraries. Prints the
# folder to pass to run_device_checks.sh and FMNIST_DIR.
#   tests/gpu/unpack_on_device.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tar -C / -xJf "$root/.device/bundle.tar.xz"

# The device's CUDA 13 runtime, cuBLAS and NCCL: the toolkit's, else the ones PyTorch's wheels
# carry. The first folder holding each library wins.
dirs=()
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  found="$(find -H /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets /usr/lib/x86_64-linux-gnu /opt \
    /usr/local/lib -name "$lib" 2>/dev/null | head -n 1 || true)"
  [[ -n "$found" ]] || { echo "unpack_on_device: $lib not found on this machine" >&2; exit 1; }
  dirs+=("$(dirname "$found")")
done
library_path="/opt/ddp/lib:$(printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++' | paste -sd:)"

mkdir -p /opt/ddp/build/tests
for name in ddp_train ddp_bench tests/gpu_tests tests/gpu_nccl_tests; do
  cat >"/opt/ddp/build/$name" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$library_path\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec /opt/ddp/real/$(basename "$name") "\$@"
EOF
  chmod +x "/opt/ddp/build/$name"
done
echo "unpacked: BUILD_DIR=/opt/ddp/build FMNIST_DIR=$root/.device/fashion-mnist"
echo "libraries: $library_path"
