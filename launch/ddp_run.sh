#!/usr/bin/env bash
# Runs ddp_train on this machine (or on the hosts of a hostfile) under Open MPI's mpirun.
#   launch/ddp_run.sh [-n RANKS] [--hostfile FILE] [--oversubscribe] -- ddp_train arguments...
# The executable: $DDP_TRAIN when set, else build/ddp_train of this checkout (what
# launch/setup.sh builds), else ddp_train on the PATH (an installed or out-of-tree build).
# The "--" may be left out: everything after the launcher's own options goes to ddp_train.
# Adds --allow-run-as-root when run as root, and --oversubscribe when asked or when more ranks
# than cores are requested on a single machine (fine for correctness runs, not for timing).
# When a rank fails, ddp_train has already printed one error line; the two banners mpirun adds
# about a non-zero exit code are dropped (DDP_KEEP_MPI_BANNERS=1 keeps them). Every other
# message of Open MPI's (not enough slots, a host unreachable) passes through: mpirun's own -q
# would hide those too.
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
# On one machine, Open MPI's default UCX layer moved gradients several times slower than the ob1
# layer over shared memory (bench_allreduce, not yet a committed result); clusters keep Open
# MPI's choice (UCX for InfiniBand). OMPI_MCA_pml in the environment overrides either way.
[[ -z "$hostfile" && -z "${OMPI_MCA_pml:-}" ]] && mpi_args+=(--mca pml ob1)
[[ $(id -u) -eq 0 ]] && mpi_args+=(--allow-run-as-root)
if [[ -n "${DDP_KEEP_MPI_BANNERS:-}" ]]; then
  exec mpirun -n "$ranks" "${mpi_args[@]}" "$binary" "$@"
fi
# Open MPI's help messages sit between dashed lines. A dashed line is held until the next line
# shows whether a banner starts; a banner's own lines are dropped and anything else (a rank's
# line arriving in between included) passes at once. (mawk: no {n} intervals in regexes.)
drop_exit_banners() {
  awk 'function release() { if (held) { print dashes; held = 0 } }
       /^--------------------+$/ {
         if (banner) { banner = 0; next }
         release(); held = 1; dashes = $0; next
       }
       held && /^(Primary job +terminated normally|mpirun detected that one or more processes exited)/ {
         held = 0; banner = 1; next
       }
       banner && /^(a non-zero exit code|non-zero exit codes|the job to be terminated|  Process name:|  Exit code:|$)/ {
         next
       }
       { release(); print; fflush() }
       END { release() }'
}
# mpirun's stderr through the filter, stdout untouched; in the background so that a signal to
# this script (which bash would hold until a foreground child ends) reaches mpirun at once.
set +e
( mpirun -n "$ranks" "${mpi_args[@]}" "$binary" "$@" 2>&1 1>&3 3>&- | drop_exit_banners >&2
  exit "${PIPESTATUS[0]}" ) 3>&1 &
job=$!
trap 'pkill -TERM -P "$job" 2>/dev/null' TERM INT HUP
# wait returns early when a trapped signal arrives: wait again until the job has really ended
# (the first wait always runs, so a job that ended at once still reports its own status).
wait "$job"
status=$?
while kill -0 "$job" 2>/dev/null; do
  wait "$job"
  status=$?
done
exit "$status"
