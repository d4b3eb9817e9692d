#!/usr/bin/env bash
# Runs ddp_train on this machine (or on the hosts of a hostfile or a Slurm allocation) under Open
# MPI's mpirun.
#   launch/ddp_run.sh [-n RANKS] [--threads N] [--hostfile FILE] [--oversubscribe] -- ddp_train
#     arguments...
# --threads N: each rank gets N cores (mpirun --map-by slot:PE=N) and splits its dense layers'
# products over N threads (training.threads_per_rank, Note [threads per rank]).
# The executable: $DDP_TRAIN when set, else build/ddp_train of this checkout (what
# launch/setup.sh builds), else ddp_train on the PATH (an installed or out-of-tree build).
# The "--" may be left out: everything after the launcher's own options goes to ddp_train.
# Adds --allow-run-as-root when run as root, and --oversubscribe when asked or when more ranks
# than cores are requested on a single machine (fine for correctness runs, not for timing).
# When a rank fails, ddp_train has already printed one error line; the two banners mpirun adds
# about a non-zero exit code are dropped (DDP_KEEP_MPI_BANNERS=1 keeps them). Every other
# message of Open MPI's (not enough slots, a host unreachable) passes through: mpirun's own -q
# would hide those too. Once the job has failed, mpirun gets DDP_TEARDOWN_S seconds (30) to end
# it; past that (a host or its link is down) this script names the silent hosts and ends mpirun.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ranks=2
mpi_args=()
hostfile=""
oversubscribe=0
threads=1
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
    --threads) needs_value "$@"; threads="$2"; shift 2 ;;
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
# Where the ranks run: this machine alone, or hosts named by a hostfile (given, or Open MPI's
# default one, which launch/netns_cluster.sh sets) or by a Slurm allocation, which mpirun reads.
hostfile="${hostfile:-${OMPI_MCA_orte_default_hostfile:-}}"
hosts_given=0
[[ -n "$hostfile" || -n "${SLURM_JOB_ID:-}" ]] && hosts_given=1
if ! [[ "$threads" =~ ^[1-9][0-9]*$ ]]; then
  echo "ddp_run: --threads $threads: the number of threads must be a positive integer" >&2
  exit 2
fi
# The cores this process may use; nproc alone would also heed OMP_NUM_THREADS (1 in benchmarks).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
if ((!hosts_given)) && ((ranks * threads > cores)); then
  echo "ddp_run: $ranks ranks x $threads threads on $cores cores: oversubscribing (timings are" \
       "not meaningful)" >&2
  oversubscribe=1
fi
((oversubscribe)) && mpi_args+=(--oversubscribe)
if ((threads > 1)); then
  # Oversubscribed, a rank cannot have cores of its own: its threads float.
  if ((oversubscribe)); then mpi_args+=(--bind-to none); else mpi_args+=(--map-by "slot:PE=$threads"); fi
  set -- --set "training.threads_per_rank=$threads" "$@"
fi
# On one machine, Open MPI's default UCX layer moved gradients several times slower than the ob1
# layer over shared memory (bench_allreduce, not yet a committed result); clusters keep Open
# MPI's choice (UCX for InfiniBand). OMPI_MCA_pml in the environment overrides either way.
if [[ -z "${OMPI_MCA_pml:-}" ]] && ((!hosts_given || ${SLURM_JOB_NUM_NODES:-2} == 1)); then
  mpi_args+=(--mca pml ob1)
fi
[[ $(id -u) -eq 0 ]] && mpi_args+=(--allow-run-as-root)
# After a rank fails, mpirun ends the job's other processes through their hosts' daemons. A daemon
# on a host that is down or cut off never answers, and mpirun would wait for it as long as TCP
# retransmits (net.ipv4.tcp_retries2: ~15 minutes by default). So once the job has failed, mpirun
# gets DDP_TEARDOWN_S seconds to end; then this script names the hosts it heard nothing from and
# ends mpirun itself. The ranks on those hosts end through their own watchdog
# (training.collective_timeout_s), their daemon once it finds mpirun gone.
teardown_s="${DDP_TEARDOWN_S:-30}"
if ! [[ "$teardown_s" =~ ^[0-9]+$ ]]; then
  echo "ddp_run: DDP_TEARDOWN_S=$teardown_s: must be a whole number of seconds" >&2
  exit 2
fi
failure="$(mktemp "${TMPDIR:-/tmp}/ddp_run.XXXXXX")"
# Filters mpirun's stderr, and writes into $failure, once the job has failed, what is known of
# the hosts that have not reported.
# - Open MPI's help messages sit between dashed lines. A dashed line is held until the next line
#   shows whether a banner starts; the two banners about a non-zero exit code are dropped (the
#   failing rank has printed its error), unless DDP_KEEP_MPI_BANNERS is set; anything else (a
#   rank's line arriving in between included) passes at once. (mawk: no {n} intervals.)
# - A rank's error line starts "[rank R on HOST]"; the watchdog's ends "the job's hosts: H (ranks
#   ...), ...". The hosts listed there that no error came from are the silent ones.
# mawk (Debian's awk) reads a pipe in blocks, holding a rank's line until more arrives: its
# -W interactive reads line by line.
awk_line_by_line=()
awk -W version 2>/dev/null | grep -q mawk && awk_line_by_line=(-W interactive)
filter_stderr() {
  awk "${awk_line_by_line[@]}" -v keep="${DDP_KEEP_MPI_BANNERS:-}" -v failure="$failure" '
       function release() { if (held) { print dashes; held = 0 } }
       function record(   h, n, silent) {
         silent = ""
         for (h = 1; h <= nhosts; h++)
           if (!(hostname[h] in reported)) silent = silent (silent ? ", " : "") hostdesc[h]
         printf "%s\n", (silent ? "no word from " silent : "no host named as silent") > failure
         close(failure)
       }
       /ddp_train: error:/ {
         if (match($0, /^\[rank [0-9]+ on [^]]+\]/)) {
           h = substr($0, RSTART, RLENGTH); sub(/^\[rank [0-9]+ on /, "", h); sub(/\]$/, "", h)
           reported[h] = 1
         }
         if (!nhosts && match($0, /the job.s hosts: .*$/)) {
           list = substr($0, RSTART + 17, RLENGTH - 17)
           while (match(list, /[^ ,]+ \([^)]*\)/)) {
             entry = substr(list, RSTART, RLENGTH); list = substr(list, RSTART + RLENGTH)
             hostdesc[++nhosts] = entry; sub(/ \(.*$/, "", entry); hostname[nhosts] = entry
           }
         }
         record()
       }
       /^--------------------+$/ {
         if (banner) { banner = 0; if (!keep) next }
         release(); held = 1; dashes = $0; next
       }
       held && /^(Primary job +terminated normally|mpirun detected that one or more processes exited)/ {
         record()
         if (!keep) { held = 0; banner = 1; next }
       }
       banner && !keep && /^(a non-zero exit code|non-zero exit codes|the job to be terminated|  Process name:|  Exit code:|$)/ {
         next
       }
       { release(); print; fflush() }
       END { release() }'
}
# mpirun's stderr through the filter, stdout untouched; in the background so that a signal to
# this script (which bash would hold until a foreground child ends) reaches mpirun at once. The
# subshell's own stderr is dropped: only its "Killed" notice when the teardown bound strikes.
set +e
( mpirun -n "$ranks" "${mpi_args[@]}" "$binary" "$@" 2>&1 1>&3 3>&- 4>&- |
    filter_stderr >&4 2>&4 3>&- 4>&-
  exit "${PIPESTATUS[0]}" ) 3>&1 4>&2 2>/dev/null &
job=$!
trap 'pkill -TERM -P "$job" 2>/dev/null' TERM INT HUP
# The teardown bound, watched beside the job.
(
  failed_at=""
  while kill -0 "$job" 2>/dev/null; do
    if [[ -z "$failed_at" && -s "$failure" ]]; then
      failed_at=$SECONDS
    elif [[ -n "$failed_at" ]] && ((SECONDS - failed_at >= teardown_s)); then
      echo "ddp_run: mpirun has not ended ${teardown_s} s after the job failed: $(cat "$failure");" \
           "a host or its link is down? Ending mpirun (DDP_TEARDOWN_S sets the wait)" >&2
      # Its local children too (ranks still alive, ssh to the silent hosts), then mpirun.
      for pid in $(pgrep -x mpirun -P "$job"); do
        pkill -KILL -P "$pid"
        kill -KILL "$pid"
      done 2>/dev/null
      break
    fi
    sleep 1
  done
) &
bound=$!
# wait returns early when a trapped signal arrives: wait again until the job has really ended
# (the first wait always runs, so a job that ended at once still reports its own status).
wait "$job"
status=$?
while kill -0 "$job" 2>/dev/null; do
  wait "$job"
  status=$?
done
kill "$bound" 2>/dev/null
wait "$bound" 2>/dev/null
# mpirun ended by the bound: the job's failure is a runtime one (ddp_train's exit code 1).
[[ -s "$failure" ]] && ((status == 137)) && status=1
rm -f "$failure"
exit "$status"
