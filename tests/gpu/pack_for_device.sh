#!/usr/bin/env bash
# Packs a CUDA build made here into .device/ for a GPU machine that has the NVIDIA driver and
# CUDA 13 libraries but none of our build dependencies (the device tool's image has no Open MPI,
# yaml-cpp, OpenBLAS or Fashion-MNIST, and cannot fetch them). .device/ holds one tar.xz and the
# dataset; tests/gpu/unpack_on_device.sh installs them there and writes wrappers under
# /opt/ddp/build, so that tests/gpu/run_device_checks.sh /opt/ddp/build runs unchanged.
#   tests/gpu/pack_for_device.sh BUILD_DIR     (a build configured with -DDDP_CUDA=ON and a
#                                               portable -DDDP_ARCH such as x86-64-v3)
# What travels: the executables and libddp_cuda.so; every shared library they and Open MPI's
# plugins need except the C runtime and the CUDA libraries (the device's own must match its
# driver); Open MPI's and PMIx's plugin and help folders and serial OpenBLAS at the absolute
# paths they were built for (Open MPI finds its plugins there; OpenBLAS is loaded by full path).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:?usage: pack_for_device.sh BUILD_DIR}" && pwd)"
dest="$root/.device"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
grep -qx '/.device/' "$root/.git/info/exclude" 2>/dev/null || echo '/.device/' >>"$root/.git/info/exclude"

executables=("$build/ddp_train" "$build/ddp_bench" "$build/tests/gpu_tests" "$build/tests/gpu_nccl_tests")
mkdir -p "$stage/opt/ddp/real" "$stage/opt/ddp/lib"
cp "${executables[@]}" "$build/libddp_cuda.so" "$stage/opt/ddp/real/"
# The device's copy of the tree may carry another checkout's git state: the build says its own.
git -C "$root" describe --always --dirty --abbrev=7 >"$stage/opt/ddp/real/commit"

# Folders installed at their own paths: Open MPI resolves plugins, help texts and its daemons
# from the prefix it was configured with.
absolute=(/usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi
  /usr/share/pmix /etc/openmpi /usr/bin/orted /usr/bin/orterun
  /usr/lib/x86_64-linux-gnu/openblas-serial)
present=()
for path in "${absolute[@]}"; do
  [[ -e "$path" ]] && present+=("${path#/}")
done
# Static archives and LAPACK are for linking, not for running.
tar -C / --exclude="*.a" --exclude="liblapack*" --exclude="libblas*" -cf - "${present[@]}" |
  tar -C "$stage" -xf -

# Every library those binaries and plugins load, less the C runtime (the device's is newer) and
# CUDA's (they must be the device's, matching its driver).
system='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libnccl|libcudnn)'
objects=("${executables[@]}" "$build/libddp_cuda.so")
mapfile -t -O "${#objects[@]}" objects < <(find /usr/lib/x86_64-linux-gnu/openmpi \
  /usr/lib/x86_64-linux-gnu/pmix2 /usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so \
  -name '*.so*' -type f)
ldd "${objects[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    # Libraries of the folders above are found there (Open MPI's own, OpenBLAS).
    [[ "$name" =~ $system || "$(readlink -f "$path")" == /usr/lib/x86_64-linux-gnu/openmpi/* ||
      "$(readlink -f "$path")" == /usr/lib/x86_64-linux-gnu/openblas-serial/* ]] ||
      cp -L "$path" "$stage/opt/ddp/lib/$name"
  done

mkdir -p "$dest"
rm -rf "$dest/fashion-mnist"
cp -r /usr/share/datasets/fashion-mnist "$dest/"
XZ_OPT=-T0 tar -C "$stage" -cJf "$dest/bundle.tar.xz" .
echo "packed: $(du -sh "$dest" | cut -f1) in $dest ($(ls "$stage/opt/ddp/lib" | wc -l) libraries)"
