#!/usr/bin/env bash
# Runs ddp_train on this machine (or on the hosts of a hostfile) under Open MPI's mpirun.
#   launch/ddp_run.sh [-n RANKS] [--hostfile FILE] [--oversubscribe] -- ddp_train arguments...
# The executable: $DDP_TRAIN when set, else build/ddp_train of this checkout (what
# launch/setup.sh builds), else ddp_train on the PATH (an installed or out-of-tree build).
# The "--" may be left out: everything after the launcher's own options goes to ddp_train.
# Adds --allow-run-as-root when run as root, and --oversubscribe when asked or when more ranks
# than cores are requested on a single machine (fine for correctness runs, not for timing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ranks=2
mpi_args=()
hostfile=""
oversubscribe=0
# An option that takes a value must have one: "ddp_run: -n needs a value".
needs_value() {
  if (($# < 2)) || [[ "$2" == -* ]]; then
    echo "ddp_run: $1 needs a value (see the header of $0)" >&2
    exit 2
  fi
}
while (($#)); do
  case "$1" in
    -n|--np) needs_value "$@"; ranks="$2"; shift 2 ;;
    --hostfile) needs_value "$@"; hostfile="$2"; mpi_args+=(--hostfile "$2"); shift 2 ;;
    --oversubscribe) oversubscribe=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [[ -n "${DDP_TRAIN:-}" ]]; then
  binary="$DDP_TRAIN"
elif [[ -x "$root/build/ddp_train" ]]; then
  binary="$root/build/ddp_train"
else
  binary="$(command -v ddp_train || true)"
fi
if [[ -z "$binary" || ! -x "$binary" ]]; then
  echo "ddp_run: no ddp_train: DDP_TRAIN=${DDP_TRAIN:-(unset)}, $root/build/ddp_train missing," \
       "none on the PATH; run launch/setup.sh, or set DDP_TRAIN=/path/to/ddp_train" >&2
  exit 2
fi
if ! [[ "$ranks" =~ ^[1-9][0-9]*$ ]]; then
  echo "ddp_run: -n $ranks: the number of ranks must be a positive integer" >&2
  exit 2
fi
if [[ -z "$hostfile" && "$ranks" -gt "$(nproc)" ]]; then
  echo "ddp_run: $ranks ranks on $(nproc) cores: oversubscribing (timings are not meaningful)" >&2
  oversubscribe=1
fi
((oversubscribe)) && mpi_args+=(--oversubscribe)
# On one machine, Open MPI's default UCX layer moved gradients ~5x slower here than the ob1 layer
# over shared memory (benchmarks/bench_allreduce); clusters keep Open MPI's choice (UCX for
# InfiniBand). OMPI_MCA_pml in the environment overrides either way.
[[ -z "$hostfile" && -z "${OMPI_MCA_pml:-}" ]] && mpi_args+=(--mca pml ob1)
[[ $(id -u) -eq 0 ]] && mpi_args+=(--allow-run-as-root)
exec mpirun -n "$ranks" "${mpi_args[@]}" "$binary" "$@"
